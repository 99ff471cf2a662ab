"""
The watermark of a change feed: a position in the stream of lead changes ordered by ``updatedAt``.

An instant plus the ids already handled at exactly that instant, so leads sharing one millisecond
are neither lost nor doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._timestamps import cursor_timestamp, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

RawLead = dict[str, Any]
"""A lead as a list response showed it (not checked beyond its id and ``updatedAt``)."""


@dataclass(frozen=True)
class Cursor:
    """
    A position in the stream of lead changes ordered by ``updatedAt``.

    Every change before ``at`` is handled, and so are the changes at exactly ``at`` of the leads in
    ``ids``. The id set is what makes equal timestamps safe: the API may order leads that share an
    ``updatedAt`` in any way, so "seen up to this lead" would be meaningless.
    """

    at: datetime
    ids: frozenset[str] = frozenset()

    def admits(self, at: datetime, lead_id: str) -> bool:
        """Whether the change of ``lead_id`` at ``at`` lies after this position."""
        return at > self.at or (at == self.at and lead_id not in self.ids)

    def past(self, at: datetime, lead_id: str) -> Cursor:
        """The position once the change of ``lead_id`` at ``at`` is handled as well."""
        if at > self.at:
            return Cursor(at, frozenset((lead_id,)))
        if at == self.at and lead_id not in self.ids:
            return Cursor(at, self.ids | {lead_id})
        return self

    def covers(self, other: Cursor) -> bool:
        """Whether everything handled at ``other`` is handled here too (this position is not behind it)."""
        return self.at > other.at or (self.at == other.at and self.ids >= other.ids)

    def furthest(self, other: Cursor) -> Cursor:
        """The later of two positions (with the same instant: everything either has handled)."""
        if self.at != other.at:
            return self if self.at > other.at else other
        return self if self.ids >= other.ids else Cursor(self.at, self.ids | other.ids)

    @staticmethod
    def earliest(cursors: Iterable[Cursor]) -> Cursor:
        """The position every one of ``cursors`` has reached."""
        result: Cursor | None = None
        for cursor in cursors:
            if result is None or cursor.at < result.at:
                result = cursor
            elif cursor.at == result.at:
                result = Cursor(result.at, result.ids & cursor.ids)
        if result is None:
            raise ValueError("earliest() needs at least one cursor.")
        return result

    def to_json(self) -> dict[str, Any]:
        return {"updatedAt": cursor_timestamp(self.at), "ids": sorted(self.ids)}

    @classmethod
    def from_json(cls, data: Any) -> Cursor:
        at = parse_timestamp(data.get("updatedAt")) if isinstance(data, dict) else None
        ids = data.get("ids") if isinstance(data, dict) else None
        if at is None or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"not a cursor: {data!r:.200}")
        return cls(at, frozenset(ids))


@dataclass(frozen=True)
class Change:
    """One lead as a list response showed it, positioned by its ``updatedAt``."""

    at: datetime
    lead_id: str
    lead: RawLead

    @property
    def key(self) -> tuple[datetime, str]:
        return self.at, self.lead_id


def positioned(items: Iterable[Any], call: str) -> tuple[list[Change], list[str]]:
    """
    The leads of a page that can be placed and judged, and why each other one was left out.

    A lead needs a non-empty string ``id``, a readable ``updatedAt`` and, if it has a ``status``,
    a string one. Anything else is skipped (and described) rather than refused with the whole
    page: one bad row must not stop a feed from seeing every lead after it.
    """
    changes: list[Change] = []
    rejected: list[str] = []
    for lead in items:
        problem = _problem(lead)
        if problem is not None:
            rejected.append(f"{call} returned a lead {problem}: {lead!r:.120}")
            continue
        changes.append(Change(parse_timestamp(lead["updatedAt"]), lead["id"], lead))  # type: ignore[arg-type]
    return changes, rejected


def _problem(lead: Any) -> str | None:
    if not isinstance(lead, dict):
        return f"that is a {type(lead).__name__}, not an object"
    if not isinstance(lead.get("id"), str) or not lead["id"]:
        return "without a string id"
    if parse_timestamp(lead.get("updatedAt")) is None:
        return "without a readable updatedAt"
    if "status" in lead and not isinstance(lead["status"], str):
        return f"whose status is {type(lead['status']).__name__}, not a string"
    return None
