"""
Where a watcher keeps its state, directly: written to every asset its trigger watches, read back
from the furthest of them (a table of what each asset holds -> what is read).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_octanist.triggers._watch.state_slot import StateSlot
from triggers.conftest import MemoryStore


class Assets:
    """The trigger's store of several assets, shaped as Airflow 3.3's ``AssetStateStoreAccessors``."""

    def __init__(self, by_name: int, by_uri: int) -> None:
        self._by_name = {f"name_{n}": MemoryStore() for n in range(by_name)}
        self._by_uri = {f"uri_{n}": MemoryStore() for n in range(by_uri)}

    @property
    def each(self) -> list[MemoryStore]:
        return [*self._by_name.values(), *self._by_uri.values()]


def stored(at: str, *ids: str) -> dict[str, Any]:
    return {"version": 1, "cursor": {"updatedAt": at, "ids": list(ids)}}


EARLY, LATE = "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"
LOAD = [
    ("nothing stored", [None, None], None),
    ("one asset holds it", [None, stored(EARLY)], stored(EARLY)),
    ("the later instant wins", [stored(LATE), stored(EARLY, "a", "b")], stored(LATE)),
    (
        "at one instant, more leads handled wins",
        [stored(EARLY, "a"), stored(EARLY, "a", "b")],
        stored(EARLY, "a", "b"),
    ),
    ("an unreadable state loses to a readable one", [{"cursor": "?"}, stored(EARLY)], stored(EARLY)),
]


@pytest.mark.parametrize(("held", "read"), [row[1:] for row in LOAD], ids=[row[0] for row in LOAD])
def test_a_state_is_read_back_from_the_furthest_asset(held: list[Any], read: Any) -> None:
    assets = Assets(by_name=1, by_uri=1)
    for store, value in zip(assets.each, held, strict=True):
        if value is not None:
            store.values["key"] = value
    assert asyncio.run(StateSlot(assets, "key").load()) == read


def test_a_state_is_written_to_every_watched_asset() -> None:
    assets = Assets(by_name=2, by_uri=1)
    asyncio.run(StateSlot(assets, "key").save(stored(LATE)))
    assert [store.values for store in assets.each] == [{"key": stored(LATE)}] * 3


def test_a_store_of_one_asset_is_used_as_it_is() -> None:
    store = MemoryStore()
    slot = StateSlot.of(store, "key")
    assert slot is not None
    asyncio.run(slot.save(stored(EARLY)))
    assert asyncio.run(slot.load()) == stored(EARLY)
    assert StateSlot.of(None, "key") is None
