"""Fixtures of the trigger tests."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_octanist.triggers._feed import health


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The metrics the feed publishes, by name (Airflow's ``Stats`` replaced)."""
    published: dict[str, int] = {}

    class Metrics:
        def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: Any = None) -> None:
            published[stat] = published.get(stat, 0) + count

        def gauge(
            self, stat: str, value: float, rate: float = 1, delta: bool = False, *, tags: Any = None
        ) -> None:
            published.setdefault(stat, 0)

    monkeypatch.setattr(health, "stats", Metrics)
    return published
