"""
Whether the list shows a joining trigger's lead: the shared listing of its millisecond.

Through the fake server (leads the list hides are polled on their own; triggers on leads of one
millisecond share one listing), and the ``Listing`` cache on its own (tables).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.testing.server import format_timestamp
from airflow_provider_octanist.triggers._status.listing import Listing

from .helpers import (
    LIST,
    Printed,
    Ticker,
    fallback_line_of_a_lead_polled_until_won,
    gets,
    joined,
    looks,
    results,
    run,
    server_now,
    stamp,
    start,
    stop,
    trigger,
    until,
)

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from airflow_provider_octanist.testing.server import FakeOctanistServer


def hide_from_list(server: FakeOctanistServer, lead_id: str, count: int | None = None) -> None:
    """Leave ``lead_id`` out of every list answer (``GET /leads/{id}`` still shows it)."""

    def without(payload: Any) -> Any:
        payload["data"] = [item for item in payload["data"] if item.get("id") != lead_id]
        return payload

    server.inject("transform", function=without, count=count, path=LIST)


def test_a_lead_the_list_does_not_show_is_polled_on_its_own_and_the_trigger_says_why_once(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    hidden, shown = server.add_lead()["id"], server.add_lead()["id"]
    hide_from_list(server, hidden)

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(hidden, poll_interval=0.02), trigger(shown))
        await until(lambda: gets(server, hidden) >= 4, "the hidden lead's trigger to poll on its own")
        await joined(1)  # the other trigger waits on the feed
        await ticker.poll()
        server.set_status(hidden, "won")  # never in a list answer: only its own polls can see it
        server.set_status(shown, "won")
        await ticker.poll()
        return await results(tasks)

    outcome = run(scenario)
    assert [events[0]["status"] for events in outcome] == ["success", "success"]
    fallbacks = Printed(capsys).lines("cannot serve")
    assert len(fallbacks) == 1, fallbacks
    assert hidden in fallbacks[0]
    assert "does not show the lead" in fallbacks[0]
    assert gets(server, shown) == 1, "a listed lead is read once, then served by the feed"


def test_a_huge_updated_at_is_capped_in_the_line_that_says_the_list_does_not_show_a_lead(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    hidden = server.add_lead()["id"]
    hide_from_list(server, hidden)
    # A time all the same: Python reads any number of fractional digits.
    huge = stamp(server_now()).replace("Z", "0" * 1_000_000 + "Z")

    def with_huge_stamp(payload: Any) -> Any:
        payload["data"]["updatedAt"] = huge
        return payload

    server.inject("transform", function=with_huge_stamp, count=None, path=f"{LIST}/{hidden}")

    line = fallback_line_of_a_lead_polled_until_won(server, hidden, capsys)

    assert (
        f"does not show the lead: it is missing from the listing of its own updatedAt {huge[:99]}\u2026"
        in line
    )


def test_looking_for_a_lead_in_the_list_costs_one_request_per_trigger_once(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    leads = [lead["id"] for lead in server.add_leads(5)]

    async def scenario() -> None:
        tasks = start(*(trigger(lead) for lead in leads))
        await joined(5)
        await ticker.poll()
        await ticker.poll()
        await stop(tasks)

    run(scenario)
    assert len(looks(server)) == 5
    stamps = {server.lead(lead)["updatedAt"] for lead in leads}
    for look in looks(server):  # each lists the millisecond of its lead's updatedAt, from one before
        low = datetime.fromisoformat(look.query["updatedAt[gte]"][0].replace("Z", "+00:00"))
        high = datetime.fromisoformat(look.query["updatedAt[lt]"][0].replace("Z", "+00:00"))
        assert high - low == timedelta(milliseconds=2)
        assert format_timestamp(high - timedelta(milliseconds=1)) in stamps


def test_triggers_on_leads_of_one_bulk_update_share_one_listing_of_its_millisecond(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    # 250 leads stamped by one bulk update: three pages of their millisecond. Each trigger walking
    # them on its own cost 250 walks of up to three pages (and held that many pages in memory).
    instant = server.now() - timedelta(hours=1)
    leads = [lead["id"] for lead in server.add_leads(250, createdAt=instant, updatedAt=instant)]
    hide_from_list(server, leads[-1])

    async def scenario() -> None:
        tasks = start(*(trigger(lead) for lead in leads))
        await joined(249)  # every listed lead's trigger; the hidden one polls on its own
        await stop(tasks)

    run(scenario)
    # One walk of the millisecond (three pages), and one more after each of the hidden lead's
    # re-reads at most (up to three): never a walk per trigger.
    assert 3 <= len(looks(server)) <= 3 * 4, len(looks(server))


def test_a_server_that_ignores_page_costs_a_few_requests_and_sends_the_triggers_to_poll_alone(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    instant = server.now() - timedelta(hours=1)
    leads = [lead["id"] for lead in server.add_leads(150, createdAt=instant, updatedAt=instant)]
    server.ignore_page = True  # every page is page 1: a walk by page number would never end

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(*(trigger(lead, poll_interval=0.05) for lead in leads[:40]))
        printed = Printed(capsys)
        await until(lambda: len(printed.lines("cannot serve")) >= 40, "every trigger to poll alone")
        server.set_status(leads[0], "won")
        done = await asyncio.wait_for(tasks[0], 10)
        await stop(tasks[1:])
        return [done]

    ((event,),) = run(scenario)
    assert event["status"] == "success"
    assert len(looks(server)) <= 2, "the second page, the same as the first, ends the listing"


def test_a_listing_of_a_millisecond_stops_when_the_last_trigger_waiting_for_it_leaves(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    instant = server.now() - timedelta(hours=1)
    lead = server.add_leads(250, createdAt=instant, updatedAt=instant)[0]["id"]
    server.latency = 0.05  # each page takes a while: the trigger is cancelled while page 1 is read

    async def scenario() -> None:
        tasks = start(trigger(lead))
        await until(lambda: len(looks(server)) >= 1, "the listing of the lead's millisecond to begin")
        await stop(tasks)
        before = len(server.requests)
        await asyncio.sleep(0.3)  # what a listing left behind would send meanwhile: three pages
        assert len(server.requests) == before, "no request after the trigger that needed it left"

    run(scenario)
    assert len(looks(server)) == 1


def test_a_lead_that_changes_while_it_is_looked_for_is_not_taken_for_hidden(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    lead = server.add_lead()["id"]

    def moved_on(payload: Any) -> Any:
        # The lead changes as the list is read: it has left the millisecond that was listed.
        server.set_status(lead, "qualified")
        payload["data"] = [item for item in payload["data"] if item.get("id") != lead]
        return payload

    server.inject("transform", function=moved_on, count=1, path=LIST)

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(lead))
        await joined(1)
        await ticker.poll()
        server.set_status(lead, "won")
        await ticker.poll()
        return await results(tasks)

    ((event,),) = run(scenario)
    assert event["status"] == "success"
    assert Printed(capsys).lines("cannot serve") == []
    assert gets(server, lead) == 2, "read at the start, and again when it was missing from the list"


def test_a_listing_outlives_the_trigger_that_began_it_and_closes_its_own_hook(
    server: FakeOctanistServer, ticker: Ticker, hook_shares: tuple[list[int], list[int]]
) -> None:
    # Other triggers may wait for the same listing: the trigger that began it going away must
    # neither stop it nor leave its hook holding a share of the client.
    opened, closed = hook_shares
    lead = server.add_lead()["id"]
    server.latency = 0.2

    async def scenario() -> None:
        (task,) = start(trigger(lead))
        await until(lambda: bool(looks(server)), "the trigger to list its lead's millisecond")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await until(lambda: len(closed) == 2, "the listing to end and close its hook")

    run(scenario)
    assert len(opened) == 2  # the trigger's hook and the listing's; the feed never started


# -- the shared listing on its own: how long its answer serves, when it is cancelled -------------

INTERVAL_S = 60.0


async def answers(value: object) -> object:
    return value


async def raises() -> None:
    raise RuntimeError("a bug")


async def never() -> None:
    await asyncio.Event().wait()


async def listing_that(outcome: str) -> Listing:
    """A listing whose task ended (or not) as ``outcome`` says, begun at monotonic 0."""
    ending: Any = {
        "listed": frozenset({"lead_1"}),
        "refused": "GET /leads ... was refused",
        "failed": None,
    }
    if outcome in ending:
        made: Coroutine[Any, Any, object] = answers(ending[outcome])
    else:
        made = raises() if outcome == "raised" else never()
    task = asyncio.get_running_loop().create_task(made)
    if outcome == "cancelled":
        task.cancel()
    if outcome != "running":
        await asyncio.gather(task, return_exceptions=True)
    listing = Listing(task)
    listing.began = 0.0
    return listing


@pytest.mark.parametrize(
    ("outcome", "age", "expired"),
    [
        ("running", 10 * INTERVAL_S, False),  # under way: every trigger that asks waits for it
        ("listed", INTERVAL_S - 1, False),
        ("listed", INTERVAL_S + 1, True),  # an answer serves for one poll interval
        ("refused", INTERVAL_S - 1, False),
        ("refused", INTERVAL_S + 1, True),
        # A failure is nobody's answer: the next trigger lists again.
        ("failed", 0.0, True),
        ("raised", 0.0, True),
        ("cancelled", 0.0, True),
    ],
)
def test_a_listing_serves_for_a_poll_interval_and_a_failed_one_not_at_all(
    outcome: str, age: float, expired: bool
) -> None:
    async def scenario() -> bool:
        listing = await listing_that(outcome)
        try:
            return listing.expired(age, INTERVAL_S)
        finally:
            listing.task.cancel()

    assert asyncio.run(scenario()) is expired


def test_a_listing_of_a_closed_event_loop_is_expired() -> None:
    listing = asyncio.run(listing_that("listed"))
    assert listing.expired(0.0, INTERVAL_S)


@pytest.mark.parametrize(
    ("outcome", "waiters", "leaving", "cancelled"),
    [
        ("running", 2, 1, False),  # another trigger still waits for it
        ("running", 2, 2, True),  # the last one to leave cancels it
        ("running", 1, 1, True),
        ("listed", 1, 1, False),  # done: its answer serves later triggers
    ],
)
def test_the_last_trigger_to_leave_cancels_a_listing_under_way(
    outcome: str, waiters: int, leaving: int, cancelled: bool
) -> None:
    async def scenario() -> bool:
        listing = await listing_that(outcome)
        listing.waiters = waiters
        for _ in range(leaving):
            listing.left()
        if cancelled:
            await asyncio.gather(listing.task, return_exceptions=True)
        done = listing.task.cancelled()
        listing.task.cancel()
        return done

    assert asyncio.run(scenario()) is cancelled
