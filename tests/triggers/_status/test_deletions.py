"""
Leads deleted while their triggers wait on the feed: the count that notices them, over loopback.

Polls are driven by the ``Ticker``; each test counts the reads and counts the feed made.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.triggers._status.feed import CLOCK_MARGIN

from .helpers import (
    LIST,
    Printed,
    Ticker,
    counts,
    gets,
    joined,
    results,
    run,
    server_now,
    start,
    stop,
    trigger,
    until,
)

if TYPE_CHECKING:
    import asyncio

    import pytest

    from airflow_provider_octanist.testing.server import FakeOctanistServer


LONG_AGO = timedelta(days=3)


def old_leads(server: FakeOctanistServer, n: int) -> list[str]:
    """Leads created days ago (the feed's count covers them as soon as it has a baseline)."""
    return [lead["id"] for lead in server.add_leads(n, createdAt=server_now() - LONG_AGO)]


async def read_once_more(server: FakeOctanistServer, reads: dict[str, int]) -> None:
    """Wait until each lead of ``reads`` was read once more than it says (by its own trigger)."""
    await until(
        lambda: all(gets(server, lead_id) == n + 1 for lead_id, n in reads.items()),
        "each trigger to read its lead once",
    )


async def watching(server: FakeOctanistServer, ticker: Ticker, ids: list[str]) -> list[asyncio.Task[Any]]:
    """Triggers on ``ids`` that joined a fresh feed, and the read each made after its first count."""
    tasks = start(*(trigger(lead_id) for lead_id in ids))
    await joined(len(ids))
    await ticker.poll()
    # Read before the feed's first count, a lead is read once more after it: the count proves
    # nothing about a lead that could have gone between the trigger's read and the count.
    await read_once_more(server, dict.fromkeys(ids, 1))
    return tasks


def test_a_deleted_lead_fires_not_found_within_a_poll_and_the_others_keep_waiting(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    ids = old_leads(server, 5)
    deleted = ids[2]

    async def scenario() -> None:
        tasks = await watching(server, ticker, ids)
        server.delete_lead(deleted)
        polls = ticker.waits
        await ticker.poll()
        await until(tasks[2].done, "the deleted lead's trigger to fire")
        assert ticker.waits - polls == 1, "noticed at the first poll after the deletion"
        assert tasks[2].result()[0]["status"] == "not_found"
        others = [lead_id for lead_id in ids if lead_id != deleted]
        await read_once_more(server, dict.fromkeys(others, 2))  # each read its lead once, and only once
        await ticker.poll()
        await ticker.poll()
        assert all(gets(server, lead_id) == 3 for lead_id in others), "an unchanged count wakes nobody"
        assert not any(task.done() for i, task in enumerate(tasks) if i != 2)
        await stop([task for i, task in enumerate(tasks) if i != 2])

    run(scenario)


def test_a_lead_created_after_the_feed_started_and_then_deleted_fires_not_found(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    (old,) = old_leads(server, 1)

    async def scenario() -> None:
        first = await watching(server, ticker, [old])
        new = server.add_lead()["id"]  # created now: after the feed's bound
        (second,) = start(trigger(new))
        await joined(2)
        await ticker.poll()
        # The server's clock moves past the lead's creation and its margin: the next poll takes a
        # later bound whose count includes the new lead, and asks its trigger to read it once.
        server.clock_offset = CLOCK_MARGIN * 2
        await ticker.poll()
        await read_once_more(server, {new: 1})
        server.delete_lead(new)
        polls = ticker.waits
        await ticker.poll()
        await until(second.done, "the new lead's trigger to fire")
        assert ticker.waits - polls == 1
        assert second.result()[0]["status"] == "not_found"
        assert not first[0].done()
        await stop(first)

    run(scenario)


def test_a_deleted_lead_nobody_waits_for_costs_one_read_per_trigger_and_no_event(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    ids = old_leads(server, 3)
    (unwatched,) = old_leads(server, 1)

    async def scenario() -> None:
        tasks = await watching(server, ticker, ids)
        server.delete_lead(unwatched)
        await ticker.poll()
        await read_once_more(server, dict.fromkeys(ids, 2))
        await ticker.poll()
        assert all(gets(server, lead_id) == 3 for lead_id in ids), "one read each, once"
        assert not any(task.done() for task in tasks)
        await stop(tasks)

    run(scenario)


def test_a_trigger_joining_a_running_feed_is_covered_without_another_read(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    first_id, joiner_id = old_leads(server, 2)

    async def scenario() -> None:
        first = await watching(server, ticker, [first_id])
        (joiner,) = start(trigger(joiner_id))  # its read begins after the feed's count: covered
        await joined(2)
        await ticker.poll()
        await ticker.poll()
        assert gets(server, joiner_id) == 1
        server.delete_lead(joiner_id)
        await ticker.poll()
        assert (await results([joiner]))[0][0]["status"] == "not_found"
        await stop(first)

    run(scenario)


def test_a_failing_count_is_part_of_its_poll_and_the_next_count_covers_the_gap(
    server: FakeOctanistServer,
    ticker: Ticker,
    counted: dict[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing_counts(payload: Any) -> Any:
        # Only the count asks for one lead a page; the feed's listing and the lead reads pass.
        if ((payload.get("meta") or {}).get("pagination") or {}).get("limit") != 1:
            return payload
        error = {"code": "INTERNAL_ERROR", "message": "Counting failed"}
        return {"success": False, "error": error, "meta": payload["meta"]}

    ids = old_leads(server, 2)

    async def scenario() -> None:
        tasks = await watching(server, ticker, ids)
        server.inject("transform", function=failing_counts, count=None, path=LIST)
        server.delete_lead(ids[1])
        await ticker.poll()
        await ticker.poll()
        assert not tasks[1].done(), "no count, no news"
        assert counted["octanist.status_feed.polls"] == ticker.waits, "one poll each, counts included"
        assert counted.get("octanist.status_feed.errors", 0) == 0, "a failed count is no failed poll"
        server.clear_faults()
        await ticker.poll()  # the same bound counted again: its window spans the failed counts
        assert (await results([tasks[1]]))[0][0]["status"] == "not_found"
        assert not tasks[0].done()
        await stop(tasks[:1])

    run(scenario)
    assert len(Printed(capsys).lines("could not count leads")) == 1


def test_a_server_refusing_the_count_filter_is_said_once_and_the_feed_goes_on(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    (lead,) = old_leads(server, 1)
    server.refused_filters = frozenset({"createdAt"})

    async def scenario() -> list[dict[str, Any]]:
        (task,) = start(trigger(lead))
        await joined(1)
        for _ in range(3):
            await ticker.poll()
        assert counts(server) == 1, "refused once, not asked again"
        assert gets(server, lead) == 1, "no read of the lead without a count"
        server.set_status(lead, "won")
        await ticker.poll()
        return (await results([task]))[0]

    (event,) = run(scenario)
    assert event["status"] == "success"
    said = Printed(capsys).lines("cannot notice deleted leads")
    assert len(said) == 1
    assert "INVALID_FILTER" in said[0]
