"""
The shared change feed of lead-status triggers, against the fake server over loopback.

The feed's wait between polls is replaced by a ``Ticker`` the test releases, so every poll happens
when the test says and request counts are exact; other waits are bounded waits on conditions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist.triggers._status import feed as status_feed
from airflow_provider_octanist.triggers._status.feed import CLOCK_MARGIN

from .helpers import (
    INTERVAL,
    LIST,
    Printed,
    Ticker,
    counts,
    fallback_line_of_a_lead_polled_until_won,
    gets,
    joined,
    lists,
    results,
    run,
    server_now,
    stamp,
    start,
    trigger,
    until,
    waiting,
)

if TYPE_CHECKING:
    from airflow_provider_octanist.testing.server import FakeOctanistServer


def test_many_triggers_share_one_list_request_per_interval(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    ids = [lead["id"] for lead in server.add_leads(40)]

    async def scenario() -> None:
        tasks = start(*(trigger(lead_id) for lead_id in ids))
        await joined(len(ids))
        await ticker.poll()
        polls_before, counts_before = lists(server), counts(server)
        for _ in range(3):
            await ticker.poll()
        assert lists(server) - polls_before == 3  # one list request per interval for 40 triggers
        assert counts(server) - counts_before == 3  # and one count of leads (deletions), for all of them
        assert all(gets(server, lead_id) == 1 for lead_id in ids)  # each read its lead once, on joining
        server.set_status(ids[7], "won")
        await ticker.poll()
        done, pending = await asyncio.wait(tasks, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert [t for t in tasks if t in done] == [tasks[7]]
        assert tasks[7].result()[0]["lead"]["id"] == ids[7]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    run(scenario)


def test_a_poll_with_many_changes_costs_one_request_per_hundred(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    watched = server.add_lead()["id"]

    async def scenario() -> None:
        (task,) = start(trigger(watched))
        await joined(1)
        await ticker.poll()
        for lead in server.add_leads(250):
            server.set_status(lead["id"], "qualified")
        before = lists(server)
        await ticker.poll()
        assert lists(server) - before == 3  # 250 changed leads: three pages
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario)


def test_every_trigger_on_one_lead_is_told_exactly_once(server: FakeOctanistServer, ticker: Ticker) -> None:
    lead = server.add_lead()["id"]
    other = server.add_lead()["id"]

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(*(trigger(lead) for _ in range(5)), trigger(other))
        await joined(6)
        await ticker.poll()
        server.set_status(lead, "won", value=5)
        server.update_lead(lead, note="edited after the win")  # a second change of the same lead
        await ticker.poll()
        events = await results(tasks[:5])
        tasks[5].cancel()
        await asyncio.gather(tasks[5], return_exceptions=True)
        return events

    for events in run(scenario):
        assert len(events) == 1
        assert events[0]["status"] == "success"
        assert events[0]["lead"]["status"] == "won"


def test_a_failure_status_from_the_feed_fires_failure(server: FakeOctanistServer, ticker: Ticker) -> None:
    lead = server.add_lead()["id"]

    async def scenario() -> list[dict[str, Any]]:
        (task,) = start(trigger(lead))
        await joined(1)
        await ticker.poll()
        server.set_status(lead, "lost", loss_reason="Budget")
        await ticker.poll()
        return (await results([task]))[0]

    (event,) = run(scenario)
    assert event["status"] == "failure"
    assert event["lead"]["lossReason"] == "Budget"


def test_triggers_on_leads_that_never_change_are_not_woken(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = [lead["id"] for lead in server.add_leads(3)]
    busy = server.add_lead()["id"]

    async def scenario() -> None:
        tasks = start(*(trigger(lead_id) for lead_id in quiet))
        await joined(3)
        for _ in range(3):
            server.update_lead(busy, note=f"edit {time.monotonic()}")
            await ticker.poll()
        assert not any(task.done() for task in tasks)
        assert all(gets(server, lead_id) == 1 for lead_id in quiet)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    run(scenario)
    # Woken only for its own lead: nothing is said about the quiet leads after joining.
    assert len(Printed(capsys).lines("is open; waiting")) == 3


def test_a_page_all_in_one_millisecond_is_read_whole(server: FakeOctanistServer, ticker: Ticker) -> None:
    leads = [lead["id"] for lead in server.add_leads(130)]
    watched = leads[-1]

    async def scenario() -> list[dict[str, Any]]:
        (task,) = start(trigger(watched))
        await joined(1)
        await ticker.poll()
        newest = max(
            datetime.fromisoformat(lead["updatedAt"].replace("Z", "+00:00")) for lead in server.leads
        )
        instant = stamp(
            newest + timedelta(milliseconds=5)
        )  # after every stamp so far, as the server's would be
        for lead_id in leads[:-1]:
            server.set_status(lead_id, "qualified", at=instant)
        server.set_status(watched, "won", at=instant)  # the 130th lead of one millisecond
        await ticker.poll()
        return (await results([task]))[0]

    (event,) = run(scenario)
    assert event["status"] == "success"
    assert event["lead"]["id"] == watched


def test_under_a_page_cap_a_win_is_seen_within_a_poll(server: FakeOctanistServer, ticker: Ticker) -> None:
    leads = [lead["id"] for lead in server.add_leads(130)]
    watched = leads[-1]
    server.page_cap = 50  # fewer leads per page than the feed asks for

    async def scenario() -> list[dict[str, Any]]:
        (task,) = start(trigger(watched))
        await joined(1)
        await ticker.poll()
        with server.at_once():  # a bulk update: the win is the 130th lead of one millisecond
            # Later than every stamp so far, as a real server's next change is: a lead's change in
            # the millisecond of its previous one is the same (id, updatedAt) to any client.
            at = server.now() + timedelta(milliseconds=1)
            for lead_id in leads[:-1]:
                server.set_status(lead_id, "qualified", at=at)
            server.set_status(watched, "won", at=at)
        await ticker.poll()
        return (await results([task]))[0]

    (event,) = run(scenario)
    assert event["status"] == "success"
    assert event["lead"]["id"] == watched


def test_the_feed_publishes_its_polls_and_the_leads_it_hands_out(
    server: FakeOctanistServer, ticker: Ticker, counted: dict[str, int]
) -> None:
    a, b = (lead["id"] for lead in server.add_leads(2))

    async def scenario() -> None:
        tasks = start(trigger(a), trigger(b))
        await joined(2)
        await ticker.poll()
        server.set_status(a, "won")
        await ticker.poll()
        await asyncio.wait_for(tasks[0], 5)
        tasks[1].cancel()
        await asyncio.gather(tasks[1], return_exceptions=True)

    run(scenario)
    assert counted["octanist.status_feed.polls"] >= 2
    assert counted["octanist.status_feed.leads_reported"] == 1
    assert "octanist.status_feed.seconds_since_progress" in counted


def test_a_lead_changed_while_the_feed_pages_is_not_missed(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    watched = server.add_lead()["id"]

    async def scenario() -> list[dict[str, Any]]:
        (task,) = start(trigger(watched))
        await joined(1)
        await ticker.poll()
        server.set_status(watched, "qualified")  # on the first page of the next poll
        for lead in server.add_leads(150):
            server.set_status(lead["id"], "qualified")

        def win_while_paging(payload: Any) -> Any:
            server.set_status(watched, "won")  # after page 1 was read: it moves behind the bound
            return payload

        server.inject("transform", path=LIST, function=win_while_paging)
        await ticker.poll()
        return (await results([task]))[0]

    (event,) = run(scenario)
    assert event["status"] == "success"


def test_a_trigger_joining_while_a_poll_is_in_flight_is_covered(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    first, second = server.add_lead()["id"], server.add_lead()["id"]

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(first))
        await joined(1)
        await ticker.poll()
        server.inject("delay", seconds=0.5, path=LIST)
        polls = lists(server)
        gate_released = asyncio.ensure_future(ticker.poll())
        await until(lambda: lists(server) > polls, "the slow poll to reach the server")
        tasks += start(trigger(second))
        await joined(2)
        server.set_status(second, "won")  # after the joiner's read, while the poll is still in flight
        await gate_released
        await ticker.poll()
        events = await results(tasks[1:])
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        return events

    ((event,),) = run(scenario)
    assert event["status"] == "success"


def test_a_joining_trigger_rewinds_a_feed_that_is_past_its_server_time(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    first, second = server.add_lead()["id"], server.add_lead()["id"]

    async def scenario() -> list[dict[str, Any]]:
        tasks = start(trigger(first))
        await joined(1)
        server.update_lead(first, note="brings the feed to the server's now")
        await ticker.poll()
        feed = status_feed.feed_of("octanist_default", INTERVAL)
        assert feed is not None
        assert feed.position is not None
        ahead = feed.position.at
        tasks += start(trigger(second))
        await joined(2)
        # A change stamped before where the feed stood, though after the joiner's own read:
        # a write committed late. The joiner's bound (server time - margin) still covers it.
        server.set_status(second, "won", at=stamp(ahead - timedelta(milliseconds=1)))
        assert feed.position.at <= ahead - CLOCK_MARGIN + timedelta(seconds=1)
        await ticker.poll()
        event = (await results(tasks[1:]))[0]
        tasks[0].cancel()
        await asyncio.gather(tasks[0], return_exceptions=True)
        return event

    (event,) = run(scenario)
    assert event["status"] == "success"


def test_a_trigger_that_leaves_mid_poll_leaves_the_others_waiting(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    leaving, staying = server.add_lead()["id"], server.add_lead()["id"]

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(leaving), trigger(staying))
        await joined(2)
        await ticker.poll()
        server.set_status(leaving, "won")
        server.set_status(staying, "won")
        server.inject("delay", seconds=0.3, path=LIST)
        polls = lists(server)
        released = asyncio.ensure_future(ticker.poll())
        await until(lambda: lists(server) > polls, "the poll to reach the server")
        tasks[0].cancel()  # its sensor was cleared while the poll was in flight
        await asyncio.gather(tasks[0], return_exceptions=True)
        assert waiting() == 1
        await released
        return await results(tasks[1:])

    ((event,),) = run(scenario)
    assert event["status"] == "success"


def test_the_feed_starts_from_the_servers_time_not_the_triggerers_clock(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
    lead = server.add_lead()["id"]

    async def scenario() -> None:
        (task,) = start(trigger(lead))
        await joined(1)
        await ticker.poll()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    run(scenario)
    (answered,) = [r for r in server.requests if r.path == f"{LIST}/{lead}"]
    # The feed's poll (the trigger's own look for its lead in the list has an upper bound too).
    listed = next(r for r in server.requests if r.path == LIST and "updatedAt[lt]" not in r.query)
    bound = datetime.fromisoformat(listed.query["updatedAt[gte]"][0].replace("Z", "+00:00"))
    assert listed.query["sort"] == ["updatedAt:asc"]
    # The bound is CLOCK_MARGIN before the server's time of the trigger's own read.
    assert timedelta(0) < server_now() - bound - CLOCK_MARGIN < timedelta(seconds=5)
    assert answered.received_at <= listed.received_at


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def cursor(seconds: int, *ids: str) -> Cursor:
    return Cursor(T0 + timedelta(seconds=seconds), frozenset(ids))


@pytest.mark.parametrize(
    ("position", "in_flight", "rewind", "bound", "expected"),
    [
        # (position, rewind) after a trigger joins with ``bound``.
        (None, None, None, cursor(10), (cursor(10), None)),  # the first subscriber places the feed
        (cursor(10, "a"), None, None, cursor(20), (cursor(10, "a"), None)),  # a later bound: nothing to do
        (cursor(10, "a"), None, None, cursor(10), (cursor(10), None)),  # "a" was handled: read it again
        (cursor(10), None, None, cursor(10), (cursor(10), None)),
        (cursor(10, "a"), None, None, cursor(0), (cursor(0), None)),  # an earlier bound: a rewind
        # A poll in flight from at or before the bound serves the joiner; a later one rewinds after it.
        (cursor(0), cursor(0), None, cursor(10), (cursor(0), None)),
        (cursor(10), cursor(10), None, cursor(0), (cursor(10), cursor(0))),
        (cursor(10), cursor(10, "a"), None, cursor(10), (cursor(10), cursor(10))),
        (cursor(10), cursor(10), cursor(5), cursor(0), (cursor(10), cursor(0))),  # the earliest rewind
        (cursor(10), cursor(10), cursor(0), cursor(5), (cursor(10), cursor(0))),
    ],
)
def test_a_joining_bound_moves_the_feed_back_only_as_far_as_it_needs(
    position: Cursor | None,
    in_flight: Cursor | None,
    rewind: Cursor | None,
    bound: Cursor,
    expected: tuple[Cursor | None, Cursor | None],
) -> None:
    feed = status_feed.StatusFeed("c", 60.0, logging.getLogger(__name__))
    feed.position, feed._in_flight, feed._rewind = position, in_flight, rewind
    feed._cover(bound)
    assert (feed.position, feed._rewind) == expected


def test_a_refused_list_call_falls_back_to_polling_the_lead_and_says_why_once(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    lead, later = server.add_lead()["id"], server.add_lead()["id"]
    server.inject("status", status=400, code="INVALID_FILTER", count=1000, path=LIST)

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(lead, poll_interval=0.02))
        await until(lambda: gets(server, lead) >= 4, "the trigger to poll its lead on its own")
        tasks += start(trigger(later, poll_interval=0.02))  # joins after the refusal: polls alone at once
        await until(lambda: gets(server, later) >= 2, "the later trigger to poll on its own")
        server.set_status(lead, "won")
        server.set_status(later, "won")
        return await results(tasks)

    outcome = run(scenario)
    assert [events[0]["status"] for events in outcome] == ["success", "success"]
    assert lists(server) == 1  # refused once; nobody asks again for a while
    fallbacks = Printed(capsys).lines("cannot serve")
    assert len(fallbacks) == 2  # once per trigger
    assert all("INVALID_FILTER" in message or "refused" in message for message in fallbacks)


def test_a_lead_the_feed_cannot_place_is_polled_on_its_own(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    lead = server.add_lead()["id"]
    server.inject("corrupt_lead", fields={"updatedAt": None}, count=1, path=f"{LIST}/{lead}")

    line = fallback_line_of_a_lead_polled_until_won(server, lead, capsys)

    assert lists(server) == 0
    assert "no readable updatedAt" in line


def test_a_huge_meta_timestamp_is_capped_in_the_line_that_says_why_a_lead_is_polled_on_its_own(
    server: FakeOctanistServer, ticker: Ticker, capsys: pytest.CaptureFixture[str]
) -> None:
    lead = server.add_lead()["id"]
    server.stale_timestamp = "9" * 1_000_000  # a megabyte, in every answer

    line = fallback_line_of_a_lead_polled_until_won(server, lead, capsys)

    assert f"no believable server time (meta.timestamp '{'9' * 99}\u2026')" in line
