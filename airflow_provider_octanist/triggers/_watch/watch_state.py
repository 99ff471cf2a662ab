"""
One lead watcher's state: its cursor plus its memory of which leads are in a watched status, so it
reports each *entry* into a status once, not every edit of a lead that stays won.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._keyset.cursor import Change, Cursor, RawLead
from airflow_provider_octanist._timestamps import cursor_timestamp, parse_timestamp
from airflow_provider_octanist.statuses import LEAD_STATUSES, status_of

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime, timedelta


STATE_VERSION = 1


@dataclass
class WatchState:
    """
    One watcher's position and memory: everything needed to report each status entry exactly once.

    ``memory`` maps the id of every lead currently in a watched status to that status and the
    ``updatedAt`` it was last seen with. A change of a remembered lead that keeps its status is an
    edit (not reported); a change into a watched status it was not remembered in is an entry
    (reported); a change out of the watched statuses forgets the lead, so a later re-entry is
    reported again. Leads not seen for ``remember_for`` (by Octanist's clock) are forgotten to
    bound the memory.
    """

    statuses: tuple[str, ...]
    remember_for: timedelta
    start: datetime
    cursor: Cursor
    memory: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @classmethod
    def fresh(
        cls,
        statuses: tuple[str, ...],
        remember_for: timedelta,
        start: datetime,
        memory: dict[str, tuple[str, datetime]] | None = None,
    ) -> WatchState:
        """A watcher that has handled nothing after ``start``."""
        return cls(statuses, remember_for, start, Cursor(start), dict(memory or {}))

    def take(self, changes: Iterable[Change], ceiling: datetime | None = None) -> list[RawLead]:
        """
        Apply the changes after this watcher's cursor, in order; return the status entries among them.

        Each entry is the lead as listed plus ``previousStatus``: the watched status the lead left
        (``None`` when it came from a status this watcher does not watch). A change after
        ``ceiling`` (dated past the server's clock) is applied but does not move the cursor, so the
        cursor never runs ahead of real time and the memory is never aged by a bogus date; the
        memory keeps it from being reported twice when it is listed again.
        """
        entries: list[RawLead] = []
        for change in sorted(changes, key=lambda c: c.key):
            if not self.cursor.admits(change.at, change.lead_id):
                continue
            at = change.at
            if ceiling is None or at <= ceiling:
                self.cursor = self.cursor.past(at, change.lead_id)
            else:
                # A date past the server's clock is remembered as the cursor's instant: its bogus
                # future must not make the lead's corrected, real changes look older than it.
                at = self.cursor.at
            known = self.memory.get(change.lead_id)
            if known is not None and at < known[1]:
                continue  # older than what we already know of this lead
            status = status_of(change.lead)
            if status is not None and status in self.statuses:
                if known is None or known[0] != status:
                    entry = dict(change.lead)
                    entry["status"] = status
                    entry["previousStatus"] = known[0] if known is not None else None
                    entries.append(entry)
                self.memory[change.lead_id] = (status, at)
            else:
                self.memory.pop(change.lead_id, None)
        self.forget_before(self.cursor.at - self.remember_for)
        return entries

    def advance_to(self, cursor: Cursor) -> None:
        """Move the cursor to ``cursor`` unless it is already further (never backwards)."""
        self.cursor = self.cursor.furthest(cursor)

    def forget_before(self, moment: datetime) -> None:
        """Drop the memory of leads last seen before ``moment``."""
        stale = [lead_id for lead_id, (_, at) in self.memory.items() if at < moment]
        for lead_id in stale:
            del self.memory[lead_id]

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON, as it is kept in the asset state store."""
        return {
            "version": STATE_VERSION,
            "start": cursor_timestamp(self.start),
            "cursor": self.cursor.to_json(),
            "memory": {
                lead_id: [status, cursor_timestamp(at)]
                for lead_id, (status, at) in sorted(self.memory.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any, statuses: tuple[str, ...], remember_for: timedelta) -> WatchState:
        """Read a stored state; ``ValueError`` when it is not one this version wrote."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a lead watcher state of version {STATE_VERSION}: {data!r:.200}")
        start = parse_timestamp(data.get("start"))
        raw_memory = data.get("memory")
        if start is None or not isinstance(raw_memory, dict):
            raise ValueError(f"not a lead watcher state: {data!r:.200}")
        memory: dict[str, tuple[str, datetime]] = {}
        for lead_id, entry in raw_memory.items():
            at = parse_timestamp(entry[1]) if isinstance(entry, list) and len(entry) == 2 else None
            if at is None or entry[0] not in LEAD_STATUSES:
                raise ValueError(f"not a lead watcher memory entry: {lead_id!r}: {entry!r:.100}")
            if entry[0] in statuses:
                memory[lead_id] = (entry[0], at)
        return cls(statuses, remember_for, start, Cursor.from_json(data.get("cursor")), memory)
