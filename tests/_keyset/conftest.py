"""Fixtures of the keyset walk's tests: cursors, leads and answered pages, in ms after ``T0``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_octanist._keyset.cursor import Change, Cursor, positioned
from airflow_provider_octanist._timestamps import cursor_timestamp

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
"""The instant every table of the feed's tests counts from (tables give instants as ms after it)."""


@dataclass(frozen=True)
class Answer:
    """One answered page, with the fields a keyset walk reads (``keyset.Page``)."""

    items: list[Any]
    has_more: bool = False
    total: int | None = None
    limit: int | None = None
    malformed: tuple[str, ...] = ()
    request_id: str | None = "req-1"
    server_time: datetime | None = None
    changes: list[Change] = field(default_factory=list)


class Pages:
    """Builds instants, cursors, leads and the pages that list them, from milliseconds after ``T0``."""

    @staticmethod
    def at(ms: float) -> datetime:
        """``T0`` plus ``ms`` milliseconds."""
        return T0 + timedelta(milliseconds=ms)

    def cursor(self, ms: float, *ids: str) -> Cursor:
        """The cursor at ``ms`` that has handled ``ids`` there."""
        return Cursor(self.at(ms), frozenset(ids))

    def lead(self, lead_id: str, ms: float, status: str = "open") -> dict[str, Any]:
        """A listed lead changed ``ms`` milliseconds after ``T0``."""
        return {"id": lead_id, "status": status, "updatedAt": cursor_timestamp(self.at(ms))}

    def answer(self, *leads: tuple[str, int], has_more: bool = False, **fields: Any) -> Answer:
        """A page of the leads ``(id, ms)``, in the order given, with the changes a walk reads."""
        items = [self.lead(lead_id, ms) for lead_id, ms in leads]
        changes, _ = positioned(items, "GET /leads")
        return Answer(items, has_more=has_more, changes=changes, **fields)


@pytest.fixture
def pages() -> Pages:
    """The builder of leads and answered pages."""
    return Pages()
