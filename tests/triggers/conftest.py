"""Fixtures of the trigger tests."""

from __future__ import annotations

import json
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


class MemoryStore:
    """The asset state store as a trigger sees it (``aget``/``aset``), JSON round trip included."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []
        self.fail_writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values[key])) if key in self.values else default

    async def aset(self, key: str, value: Any) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise RuntimeError("the asset state store is not reachable")
        self.values[key] = json.loads(json.dumps(value))
        self.writes.append((key, self.values[key]))

    def only(self) -> dict[str, Any]:
        (value,) = self.values.values()
        return value
