"""
Leads deleted while their triggers wait on the feed: the count that notices them.

Through the fake server (polls driven by the ``Ticker``), and ``DeletionCheck`` on its own (tables).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist.exceptions import OctanistServerError
from airflow_provider_octanist.triggers._feed.changes import FeedNotes
from airflow_provider_octanist.triggers._status.deletions import DeletionCheck
from airflow_provider_octanist.triggers._status.feed import CLOCK_MARGIN
from airflow_provider_octanist.triggers._status.subscription import Subscription

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


# -- the deletion check on its own: counts in, asks to read out ----------------------------------

MARGIN = timedelta(seconds=5)
SERVER = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
"""The server's clock at the first poll; the first bound is ``SERVER - MARGIN``."""


class CountingHook:
    """Answers each count of ``GET /leads?createdAt[lt]=B&limit=1`` with the next of ``totals``."""

    def __init__(self, *totals: int | Exception | None) -> None:
        self.totals = list(totals)
        self.bounds: list[datetime] = []

    async def list_leads_page(self, page: int, **query: Any) -> Any:
        self.bounds.append(query["created_lt"])
        total = self.totals.pop(0)
        if isinstance(total, Exception):
            raise total
        # ``None``: an answer without meta.pagination, which is no count.
        return SimpleNamespace(limit=None if total is None else 1, total=total)


def waiter(lead_id: str, created: datetime | None, read_from: float = 0.0) -> Subscription:
    return Subscription(lead_id, Cursor(SERVER), SERVER, created_at=created, read_from=read_from)


def asked(waiters: list[Subscription]) -> set[str]:
    """Which waiters the check asked to read their lead (taken, as the trigger takes it)."""
    return {w.lead_id for w in waiters if w.take(polls=0).check}


def poll(
    check: DeletionCheck, hook: CountingHook, waiters: list[Subscription], now: datetime = SERVER
) -> None:
    asyncio.run(check.after_poll(hook, now, waiters))  # type: ignore[arg-type]


def fresh_check() -> DeletionCheck:
    return DeletionCheck(FeedNotes(), MARGIN, clock=lambda: 100.0)


def three_waiters() -> list[Subscription]:
    """A lead created days ago, one of unknown creation time, one created after the first bound."""
    return [
        waiter("old", SERVER - LONG_AGO),
        waiter("unknown", None),
        waiter("young", SERVER - timedelta(seconds=1)),
    ]


@pytest.mark.parametrize(
    ("second_count", "reads", "expected"),
    [
        # Covered by the first count's read: an unchanged count asks nobody.
        (10, {"old": True}, set()),
        # A count that went down or up asks every lead that could be the deleted one.
        (9, {"old": True}, {"old", "unknown"}),
        (11, {"old": True}, {"old", "unknown"}),
        # A read that failed leaves a doubt: asked again at the next poll.
        (10, {"old": False}, {"old"}),
        # A transient failure skips one count and asks nobody; the bound stays.
        (OctanistServerError("503"), {"old": True}, set()),
    ],
)
def test_a_count_asks_the_waiters_whose_lead_could_be_the_deleted_one(
    second_count: int | Exception, reads: dict[str, bool], expected: set[str]
) -> None:
    check, waiters = fresh_check(), three_waiters()
    for w in waiters:
        check.join(w)
    hook = CountingHook(10, second_count)
    poll(check, hook, waiters)
    # The first baseline arrived after the reads: it proves nothing about them, so the lead it
    # counts is read once more.
    assert asked(waiters) == {"old"}
    for w in waiters:
        if w.lead_id in reads:
            w.checked(ok=reads[w.lead_id])
    poll(check, hook, waiters)
    assert asked(waiters) == expected
    assert hook.bounds == [SERVER - MARGIN, SERVER - MARGIN]
    assert (check.bound, check.off) == (SERVER - MARGIN, None)


@pytest.mark.parametrize(
    ("created", "read_from", "covered"),
    [
        (SERVER - LONG_AGO, 100.0, True),  # the baseline arrived when the read began
        (SERVER - LONG_AGO, 200.0, True),
        (SERVER - LONG_AGO, 50.0, False),  # the baseline came after the read: the lead may be gone
        (SERVER, 200.0, False),  # created after the bound: not in the count
        (None, 200.0, False),
    ],
)
def test_a_waiter_joining_a_running_check_is_covered_only_by_a_baseline_older_than_its_read(
    created: datetime | None, read_from: float, covered: bool
) -> None:
    check = fresh_check()
    poll(check, CountingHook(10), [])  # the baseline, answered at clock 100
    joining = waiter("joining", created, read_from)
    check.join(joining)
    assert joining.covered is covered


def test_a_lead_created_after_the_bound_moves_it_counting_the_new_bound_first() -> None:
    check, waiters = fresh_check(), [waiter("old", SERVER - LONG_AGO)]
    hook = CountingHook(10, 12, 10)
    poll(check, hook, waiters)
    later = SERVER + timedelta(minutes=1)
    waiters.append(waiter("young", SERVER))
    poll(check, hook, waiters, now=later)
    assert hook.bounds == [SERVER - MARGIN, later - MARGIN, SERVER - MARGIN]
    assert (check.bound, check.total) == (later - MARGIN, 12)


def test_a_count_the_server_cannot_give_turns_the_check_off_for_good() -> None:
    check, waiters = fresh_check(), [waiter("old", SERVER - LONG_AGO)]
    hook = CountingHook(None)
    poll(check, hook, waiters)
    assert check.off is not None
    assert "meta.pagination.total" in check.off
    poll(check, hook, waiters)
    assert len(hook.bounds) == 1, "no count once the check is off"
    assert asked(waiters) == set()
