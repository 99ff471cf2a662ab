"""
A watcher's state, directly: which changes are status entries, and what it remembers after them.

Each table row: the watcher (statuses, cursor, memory), the changes it takes, the server's clock
(``ceiling``); then the entries it reports (id, previous status), its memory and its cursor after.
Instants are ms after ``T0``; a memory is ``{id: (status, ms)}``; a cursor ``(ms, ids handled there)``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.triggers._watch.watch_state import WatchState

if TYPE_CHECKING:
    from triggers._watch.conftest import States

WON = ("won",)
TAKE: list[
    tuple[str, tuple[str, ...], Any, dict[str, Any], list[Any], float | None, list[Any], dict[str, Any], Any]
] = [
    (
        "a lead entering the watched status is an entry",
        WON,
        (0, ()),
        {},
        [("a", 5, "won")],
        None,
        [("a", None)],
        {"a": ("won", 5)},
        (5, ("a",)),
    ),
    (
        "an edit of a lead that stays in the status is no entry",
        WON,
        (0, ()),
        {"a": ("won", 1)},
        [("a", 5, "won")],
        None,
        [],
        {"a": ("won", 5)},
        (5, ("a",)),
    ),
    (
        "a lead leaving the watched statuses is forgotten, so its return is an entry again",
        WON,
        (0, ()),
        {"a": ("won", 1)},
        [("a", 5, "lost"), ("a", 7, "won")],
        None,
        [("a", None)],
        {"a": ("won", 7)},
        (7, ("a",)),
    ),
    (
        "a move between two watched statuses is an entry naming the status left",
        ("won", "lost"),
        (0, ()),
        {"a": ("won", 1)},
        [("a", 5, "lost")],
        None,
        [("a", "won")],
        {"a": ("lost", 5)},
        (5, ("a",)),
    ),
    (
        "a lead listed without a status is forgotten",
        WON,
        (0, ()),
        {"a": ("won", 1)},
        [("a", 5, None)],
        None,
        [],
        {},
        (5, ("a",)),
    ),
    (
        "a change the cursor has handled is ignored",
        WON,
        (5, ("a",)),
        {},
        [("a", 5, "won"), ("b", 4, "won")],
        None,
        [],
        {},
        (5, ("a",)),
    ),
    (
        "changes are taken in order of updatedAt, then id, whatever order they come in",
        WON,
        (0, ()),
        {},
        [("b", 5, "won"), ("a", 5, "won"), ("c", 3, "won")],
        None,
        [("c", None), ("a", None), ("b", None)],
        {"a": ("won", 5), "b": ("won", 5), "c": ("won", 3)},
        (5, ("a", "b")),
    ),
    (
        "a change past the server's clock is reported but moves no cursor and is remembered at it",
        WON,
        (2, ()),
        {},
        [("a", 9, "won")],
        5,
        [("a", None)],
        {"a": ("won", 2)},
        (2, ()),
    ),
    (
        "a change older than what is remembered of its lead is ignored",
        WON,
        (0, ()),
        {"a": ("won", 8)},
        [("a", 5, "lost")],
        None,
        [],
        {"a": ("won", 8)},
        (5, ("a",)),
    ),
    (
        "a lead not seen for remember_for is forgotten",
        WON,
        (0, ()),
        {"old": ("won", -1)},
        [("a", 86_400_000, "open")],
        None,
        [],
        {},
        (86_400_000, ("a",)),
    ),
]


@pytest.mark.parametrize(
    ("statuses", "cursor", "memory", "changes", "ceiling", "entries", "remembered", "moved"),
    [row[1:] for row in TAKE],
    ids=[row[0] for row in TAKE],
)
def test_a_watch_state_reports_each_entry_into_a_watched_status_once(
    states: States,
    statuses: tuple[str, ...],
    cursor: Any,
    memory: dict[str, Any],
    changes: list[Any],
    ceiling: float | None,
    entries: list[Any],
    remembered: dict[str, Any],
    moved: Any,
) -> None:
    state = states.state(statuses, cursor, memory)
    taken = state.take(
        [states.change(*change) for change in changes], states.at(ceiling) if ceiling is not None else None
    )
    assert [(entry["id"], entry["previousStatus"]) for entry in taken] == entries
    assert state.memory == {lead_id: (status, states.at(ms)) for lead_id, (status, ms) in remembered.items()}
    assert state.cursor == states.state(statuses, moved, {}).cursor


ADVANCE = [
    ("to a later cursor", (5, ("a",)), (7, ()), (7, ())),
    ("never backwards", (5, ("a",)), (3, ("b",)), (5, ("a",))),
    ("at one instant, everything either handled", (5, ("a",)), (5, ("b",)), (5, ("a", "b"))),
]


@pytest.mark.parametrize(("cursor", "to", "moved"), [a[1:] for a in ADVANCE], ids=[a[0] for a in ADVANCE])
def test_a_watch_state_advances_to_a_walks_end_never_backwards(
    states: States, cursor: Any, to: Any, moved: Any
) -> None:
    state = states.state(WON, cursor, {})
    state.advance_to(states.state(WON, to, {}).cursor)
    assert state.cursor == states.state(WON, moved, {}).cursor


def test_a_watch_state_reads_back_what_it_wrote_keeping_only_its_statuses(states: States) -> None:
    state = states.state(("won", "lost"), (5, ("a",)), {"a": ("won", 5), "b": ("lost", 3)})
    stored = state.to_json()
    assert stored["version"] == 1
    again = WatchState.from_json(stored, WON, timedelta(days=1))
    assert (again.cursor, again.memory, again.start) == (state.cursor, {"a": state.memory["a"]}, state.start)


@pytest.mark.parametrize(
    "stored",
    [
        None,
        {"version": 2},
        {"version": 1, "start": "never", "memory": {}},
        {"version": 1, "start": "2026-01-01T00:00:00Z", "memory": []},
        {"version": 1, "start": "2026-01-01T00:00:00Z", "memory": {"a": ["won"]}},
        {"version": 1, "start": "2026-01-01T00:00:00Z", "memory": {"a": ["winning", "2026-01-01T00:00:00Z"]}},
    ],
    ids=[
        "nothing",
        "another version",
        "no start",
        "a memory that is no mapping",
        "a short entry",
        "no status",
    ],
)
def test_a_stored_state_this_version_did_not_write_is_refused(stored: Any) -> None:
    with pytest.raises(ValueError, match="not a lead watcher"):
        WatchState.from_json(stored, WON, timedelta(days=1))
