"""
Where a lead watcher keeps its state on Airflow 3.3+: the asset state store of every asset it
watches, under a key naming the watcher (connection, statuses, start point).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._keyset.cursor import Cursor

if TYPE_CHECKING:
    from collections.abc import Sequence


_STATE_KEY_PREFIX = "octanist.lead_events"


def state_key(octanist_conn_id: str, statuses: Sequence[str], updated_since: str | None) -> str:
    """
    The asset-state-store key of one watcher.

    An asset may have several watchers, so the key names what makes a watcher's state its own: the
    connection, the statuses and the start point. Changing the poll interval keeps the state.
    """
    identity = json.dumps([octanist_conn_id, list(statuses), updated_since], separators=(",", ":"))
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return f"{_STATE_KEY_PREFIX}/{octanist_conn_id}/{'+'.join(statuses)}/{digest}"


class StateSlot:
    """
    One watcher's state in the asset state store of every asset its trigger watches.

    Airflow de-duplicates watchers by their trigger's arguments, so one trigger can watch several
    assets; its state is then written to each of them and read back from whichever is furthest.
    """

    def __init__(self, store: Any, key: str) -> None:
        self.key = key
        self.accessors = _accessors_of(store)

    @classmethod
    def of(cls, store: Any, key: str) -> StateSlot | None:
        """The slot in ``store`` (the trigger's ``asset_state_store``), or ``None`` without one."""
        return None if store is None else cls(store, key)

    async def load(self) -> Any:
        """The stored state, the furthest one when the assets disagree; ``None`` when there is none."""
        found: list[Any] = []
        for accessor in self.accessors:
            value = await accessor.aget(self.key, None)
            if value is not None:
                found.append(value)
        if len(found) <= 1:
            return found[0] if found else None

        def position(value: Any) -> tuple[datetime, int]:
            try:
                cursor = Cursor.from_json(value.get("cursor"))
            except (AttributeError, ValueError):
                return datetime.min.replace(tzinfo=timezone.utc), -1
            return cursor.at, len(cursor.ids)

        return max(found, key=position)

    async def save(self, value: dict[str, Any]) -> None:
        """Write the state to every watched asset."""
        for accessor in self.accessors:
            await accessor.aset(self.key, value)


def _accessors_of(store: Any) -> list[Any]:
    """
    The per-asset accessors inside the trigger's ``AssetStateStoreAccessors``.

    Its ``aget``/``aset`` shortcuts only work for exactly one asset; a trigger shared by several
    assets must address each one. Airflow 3.3 keeps them in ``_by_name``/``_by_uri`` and offers no
    public way to list them, so they are read defensively; anything else is used as one accessor.
    """
    by_name, by_uri = getattr(store, "_by_name", None), getattr(store, "_by_uri", None)
    if isinstance(by_name, dict) and isinstance(by_uri, dict) and (by_name or by_uri):
        return [*by_name.values(), *by_uri.values()]
    return [store]
