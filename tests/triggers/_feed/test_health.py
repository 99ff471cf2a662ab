"""
Issue 17: a watcher that cannot keep its promise says so where people look.

Every poll loop (event trigger, shared poll, status feed) publishes Airflow metrics through
``Stats`` and, once it has failed several polls in a row, logs at ERROR once an hour.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.triggers._feed import health, lead_source
from airflow_provider_octanist.triggers._feed.health import SAY_AGAIN_EVERY, STALLED_AFTER_POLLS, FeedHealth

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

POLL = 0.03


class Metrics:
    """Stands in for Airflow's ``Stats``: what was counted and gauged, with tags."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.gauges: dict[str, list[float]] = {}
        self.tags: set[tuple[str, str]] = set()

    def incr(self, stat: str, count: int = 1, rate: float = 1, *, tags: dict[str, str] | None = None) -> None:
        self.counts[stat] = self.counts.get(stat, 0) + count
        self.tags.update((tags or {}).items())

    def gauge(
        self, stat: str, value: float, rate: float = 1, delta: bool = False, *, tags: Any = None
    ) -> None:
        self.gauges.setdefault(stat, []).append(value)


class Lines:
    """Stands in for a logger: each line with its level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def _add(self, level: str, message: str, *args: Any, **_: Any) -> None:
        self.lines.append((level, message % args))

    def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._add("error", message, *args)

    def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        self._add("info", message, *args)

    def at(self, level: str) -> list[str]:
        return [text for lvl, text in self.lines if lvl == level]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    recorder = Metrics()
    monkeypatch.setattr(health, "stats", lambda: recorder)
    return recorder


def test_stats_is_airflows_own_metrics_object() -> None:
    stats = health.stats()
    assert callable(stats.incr)
    assert callable(stats.gauge)


def test_a_blind_watcher_logs_one_error_an_hour_not_one_per_poll(metrics: Metrics) -> None:
    lines, clock = Lines(), Clock()
    feed = FeedHealth("event_trigger", "octanist_default", lines, clock)
    for _ in range(STALLED_AFTER_POLLS - 1):
        clock.now += 60
        feed.failed(RuntimeError("Octanist answered 503"))
    assert lines.at("error") == [], "a failure or two is not blindness"
    for _ in range(50):
        clock.now += 60
        feed.failed(RuntimeError("Octanist answered 503"))
    assert len(lines.at("error")) == 1
    clock.now += SAY_AGAIN_EVERY
    feed.failed(RuntimeError("Octanist answered 503"))
    assert len(lines.at("error")) == 2, "said again after an hour while it lasts"
    error = lines.at("error")[0]
    assert (
        "watcher (connection 'octanist_default') has seen no lead changes for 180 s (3 failed polls" in error
    )
    assert "RuntimeError: Octanist answered 503" in error
    assert "octanist.event_trigger.seconds_since_progress" in error


def test_a_recovered_watcher_says_so_and_starts_counting_again(metrics: Metrics) -> None:
    lines, clock = Lines(), Clock()
    feed = FeedHealth("status_feed", "octanist_default", lines, clock)
    for _ in range(STALLED_AFTER_POLLS):
        feed.failed(RuntimeError("down"))
    feed.progressed()
    assert [text for text in lines.at("info") if "sees lead changes again" in text]
    for _ in range(STALLED_AFTER_POLLS):
        feed.failed(RuntimeError("down again"))
    assert len(lines.at("error")) == 2, "a new outage is said at once, not an hour after the last"


def test_every_poll_publishes_polls_errors_and_seconds_since_progress(metrics: Metrics) -> None:
    clock = Clock()
    feed = FeedHealth("shared_poll", "crm", Lines(), clock)
    feed.progressed()
    clock.now += 90
    feed.failed(RuntimeError("down"))
    feed.reported(3)
    feed.reported(0)
    assert metrics.counts == {
        "octanist.shared_poll.polls": 2,
        "octanist.shared_poll.errors": 1,
        "octanist.shared_poll.leads_reported": 3,
    }
    assert metrics.gauges == {"octanist.shared_poll.seconds_since_progress": [0.0, 90.0]}
    assert metrics.tags == {("conn_id", "crm")}


# -- the watchers themselves, against the fake ----------------------------------------------------------


@pytest.fixture
def server(octanist_server: FakeOctanistServer, octanist_conn: str) -> FakeOctanistServer:
    return octanist_server


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    async def brief(seconds: float) -> None:
        await asyncio.sleep(min(seconds, POLL))

    monkeypatch.setattr(lead_source, "sleep", brief)


async def until(condition: Any, what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="The event trigger needs Airflow 3.0+.")
@pytest.mark.usefixtures("short_waits")
def test_the_event_trigger_publishes_metrics_and_says_once_that_it_is_blind(
    server: FakeOctanistServer, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

    a, b = server.add_leads(2)
    trigger = OctanistLeadEventTrigger(poll_interval=POLL)
    trigger.asset_state_store = None

    async def scenario() -> None:
        events = trigger.run()
        pending = asyncio.ensure_future(events.__anext__())
        await until(lambda: metrics.counts.get("octanist.event_trigger.polls", 0) >= 2, "a first poll")
        server.set_status(a["id"], "won", value=1)
        assert [lead["id"] for lead in (await asyncio.wait_for(pending, 5)).payload["leads"]] == [a["id"]]
        pending = asyncio.ensure_future(events.__anext__())
        server.inject("status", status=503, count=None, method="GET", path="/api/leads")
        await until(
            lambda: metrics.counts.get("octanist.event_trigger.errors", 0) >= 3 * STALLED_AFTER_POLLS,
            "many failed polls",
        )
        server.clear_faults()
        server.set_status(b["id"], "won", value=2)
        assert [lead["id"] for lead in (await asyncio.wait_for(pending, 5)).payload["leads"]] == [b["id"]]
        pending.cancel()
        await events.aclose()

    asyncio.run(scenario())
    out = capsys.readouterr()
    printed = out.out + out.err
    assert printed.count("has seen no lead changes for") == 1, "one ERROR, not one per failed poll"
    assert printed.count("sees lead changes again") == 1
    assert metrics.counts["octanist.event_trigger.leads_reported"] == 2
    assert metrics.gauges["octanist.event_trigger.seconds_since_progress"][-1] == 0.0
    assert max(metrics.gauges["octanist.event_trigger.seconds_since_progress"]) > 0.0
