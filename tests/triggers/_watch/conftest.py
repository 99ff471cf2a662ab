"""Fixtures of the watcher tests: watch states and lead changes, built from milliseconds after ``T0``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_octanist._keyset.cursor import Change, Cursor
from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.triggers._watch.watch_state import WatchState

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
"""The instant every table of the watcher tests counts from."""


class States:
    """Builds watch states and the changes they take."""

    remember_for = timedelta(days=1)

    @staticmethod
    def at(ms: float) -> datetime:
        """``T0`` plus ``ms`` milliseconds."""
        return T0 + timedelta(milliseconds=ms)

    def state(
        self,
        statuses: tuple[str, ...],
        cursor: tuple[float, tuple[str, ...]],
        memory: dict[str, tuple[str, float]],
    ) -> WatchState:
        """A watcher of ``statuses`` at ``cursor`` (ms, ids) remembering ``memory`` (id: status, ms)."""
        remembered = {lead_id: (status, self.at(ms)) for lead_id, (status, ms) in memory.items()}
        return WatchState(
            statuses,
            self.remember_for,
            self.at(0),
            Cursor(self.at(cursor[0]), frozenset(cursor[1])),
            remembered,
        )

    def change(self, lead_id: str, ms: float, status: str | None) -> Change:
        """The change of ``lead_id`` into ``status`` (``None``: listed without one) at ``ms``."""
        lead = {"id": lead_id, "updatedAt": cursor_timestamp(self.at(ms))}
        if status is not None:
            lead["status"] = status
        return Change(self.at(ms), lead_id, lead)


@pytest.fixture
def states() -> States:
    """The builder of watch states and changes."""
    return States()
