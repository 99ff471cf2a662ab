"""
The status trigger's wait with the shared feed: reads before joining, failures, end time, log lines.

Run as the triggerer runs it, against the fake server, polls driven by the ``Ticker``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

from .helpers import (
    LIST,
    Printed,
    Ticker,
    gets,
    joined,
    lists,
    results,
    run,
    start,
    trigger,
    until,
)

if TYPE_CHECKING:
    from airflow_provider_octanist.testing.server import FakeOctanistServer


def test_a_lead_already_won_fires_at_once_without_joining(server: FakeOctanistServer, ticker: Ticker) -> None:
    lead = server.add_lead(status="won")["id"]

    async def scenario() -> list[list[dict[str, Any]]]:
        return await results(start(trigger(lead)))

    ((event,),) = run(scenario)
    assert event["status"] == "success"
    assert lists(server) == 0


def test_an_unknown_lead_fires_not_found_without_joining(server: FakeOctanistServer, ticker: Ticker) -> None:
    async def scenario() -> list[list[dict[str, Any]]]:
        return await results(start(trigger("lead_nobody")))

    ((event,),) = run(scenario)
    assert event["status"] == "not_found"
    assert lists(server) == 0


def test_the_end_time_checks_the_lead_once_more_then_times_out(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    lead = server.add_lead(status="qualified")["id"]

    async def scenario() -> list[list[dict[str, Any]]]:
        return await results(start(trigger(lead, end_time=time.time() + 1.0)))

    ((event,),) = run(scenario)
    assert event["status"] == "timeout"
    assert event["lead"]["status"] == "qualified"
    assert gets(server, lead) == 2  # on joining, and right at the end time


def test_transient_feed_failures_count_towards_max_consecutive_errors(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    lead = server.add_lead()["id"]

    server.inject("status", status=503, count=1000, path=LIST)

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(lead, max_consecutive_errors=3))
        await joined(1)
        await ticker.poll()  # the poll on joining failed, and this one
        await ticker.release()  # the third in a row
        return await results(tasks)

    ((event,),) = run(scenario)
    assert event["status"] == "error"
    assert "3 failed checks in a row" in event["message"]
    assert "503" in event["message"]


def test_a_good_poll_resets_the_failure_count(server: FakeOctanistServer, ticker: Ticker) -> None:
    lead = server.add_lead()["id"]

    server.inject("status", status=503, count=2, path=LIST)  # the first poll fails (with its retry)

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(lead, max_consecutive_errors=2))
        await joined(1)
        await ticker.poll()  # a good one
        server.inject("status", status=503, count=2, path=LIST)
        await ticker.poll()  # fails again: one in a row, not two
        server.set_status(lead, "won")
        await ticker.poll()
        return await results(tasks)

    ((event,),) = run(scenario)
    assert event["status"] == "success"


def test_a_rejected_key_on_the_feed_fires_error(server: FakeOctanistServer, ticker: Ticker) -> None:
    lead = server.add_lead()["id"]

    server.inject("status", status=401, code="UNAUTHORIZED", count=1, path=LIST)

    async def scenario() -> list[list[dict[str, Any]]]:
        return await results(start(trigger(lead)))

    ((event,),) = run(scenario)
    assert event["status"] == "error"
    assert "API key" in event["message"]


def test_a_long_wait_logs_still_waiting_lines(
    server: FakeOctanistServer,
    ticker: Ticker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lead = server.add_lead(status="qualified")["id"]
    monkeypatch.setattr(OctanistLeadStatusTrigger, "still_waiting_every", 0.05)
    printed = Printed(capsys)

    async def scenario() -> None:
        tasks = start(trigger(lead, end_time=time.time() + 3600))
        await joined(1)
        await ticker.poll()
        await until(lambda: bool(printed.lines("Still waiting")), "a still-waiting line")
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(scenario)
    line = printed.lines("Still waiting")[0]
    assert lead in line
    assert "qualified" in line
    assert "check(s)" in line
    assert "s left" in line


def test_shared_feed_is_a_plain_serialized_argument() -> None:
    _, kwargs = OctanistLeadStatusTrigger("lead_x", shared_feed=False).serialize()
    assert kwargs["shared_feed"] is False
    assert OctanistLeadStatusTrigger(**kwargs).shared_feed is False
    with pytest.raises(ValueError, match="shared_feed"):
        OctanistLeadStatusTrigger("lead_x", shared_feed="yes")  # type: ignore[arg-type]


def test_a_trigger_polling_alone_logs_still_waiting_lines_too(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = server.add_lead()["id"]
    monkeypatch.setattr(OctanistLeadStatusTrigger, "still_waiting_every", 0.05)
    printed = Printed(capsys)

    async def scenario() -> None:
        tasks = start(trigger(lead, poll_interval=0.02, shared_feed=False))
        await until(lambda: bool(printed.lines("Still waiting")), "a still-waiting line")
        tasks[0].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(scenario)
    assert "no end time" in printed.lines("Still waiting")[0]


def test_every_hook_is_closed_when_the_triggers_are_cancelled(
    server: FakeOctanistServer, ticker: Ticker, hook_shares: tuple[list[int], list[int]]
) -> None:
    opened, closed = hook_shares
    ids = [lead["id"] for lead in server.add_leads(3)]

    async def scenario() -> None:
        tasks = start(*(trigger(lead_id) for lead_id in ids))
        await joined(3)
        await ticker.poll()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(scenario)
    assert len(opened) == 7  # three triggers, the listings of their leads' milliseconds, the feed
    assert len(closed) == len(opened)
