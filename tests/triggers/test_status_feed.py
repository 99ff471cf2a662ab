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
from conftest import connection_json

from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.testing.server import format_timestamp
from airflow_provider_octanist.triggers._feed.cursor import Cursor
from airflow_provider_octanist.triggers._status import feed as status_feed
from airflow_provider_octanist.triggers._status.feed import CLOCK_MARGIN
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from airflow_provider_octanist.testing.server import FakeOctanistServer, RecordedRequest

INTERVAL = 30.0  # the feed never waits it out: the Ticker decides when the next poll starts
LIST = "/api/leads"


class Ticker:
    """Stands in for the feed's wait between polls: each wait lasts until the test releases it."""

    def __init__(self) -> None:
        self.waits = 0
        self._gate: asyncio.Event | None = None

    async def sleep(self, seconds: float) -> None:
        self.waits += 1
        self._gate = gate = asyncio.Event()
        try:
            await gate.wait()
        finally:
            self._gate = None

    async def release(self) -> int:
        """Let the feed poll once more; return how many waits it had begun before."""
        await until(lambda: self._gate is not None, "the feed to wait between polls")
        assert self._gate is not None
        before = self.waits
        self._gate.set()
        return before

    async def poll(self) -> None:
        """Let the feed poll once more and wait until that poll is over."""
        before = await self.release()
        await until(lambda: self.waits > before, "the poll to end")


@pytest.fixture
def server(octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch) -> FakeOctanistServer:
    """The fake server behind ``octanist_default``, with one fast hook retry."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        connection_json(octanist_server.url, octanist_server.api_key, retry_backoff=0.01, max_retries=1),
    )
    return octanist_server


@pytest.fixture
def ticker(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    clock = Ticker()
    monkeypatch.setattr(status_feed, "sleep", clock.sleep)
    return clock


def trigger(lead_id: str, **kwargs: Any) -> OctanistLeadStatusTrigger:
    return OctanistLeadStatusTrigger(lead_id, poll_interval=kwargs.pop("poll_interval", INTERVAL), **kwargs)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)


async def all_events(t: OctanistLeadStatusTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in t.run()]


def start(*triggers: OctanistLeadStatusTrigger) -> list[asyncio.Task[list[dict[str, Any]]]]:
    return [asyncio.ensure_future(all_events(t)) for t in triggers]


def waiting() -> int:
    feed = status_feed.feed_of("octanist_default", INTERVAL)
    return 0 if feed is None else feed.size


async def joined(n: int) -> None:
    await until(lambda: waiting() == n, f"{n} trigger(s) to join the feed")


async def stop(tasks: list[asyncio.Task[list[dict[str, Any]]]]) -> None:
    """Cancel the triggers' tasks and wait until they are over."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def results(tasks: list[asyncio.Task[list[dict[str, Any]]]]) -> list[list[dict[str, Any]]]:
    return list(await asyncio.wait_for(asyncio.gather(*tasks), 10))


def is_count(request: RecordedRequest) -> bool:
    """A request of the feed's deletion check (``GET /leads?createdAt[lt]=...&limit=1``)."""
    return request.path == LIST and "createdAt[lt]" in request.query


def looks(server: FakeOctanistServer) -> list[RecordedRequest]:
    """The triggers' listings of the millisecond of their lead's ``updatedAt`` (do they see it?)."""
    return [r for r in server.requests if r.path == LIST and "updatedAt[lt]" in r.query]


def lists(server: FakeOctanistServer) -> int:
    """The feed's listings of changes (and the triggers' own look-ups), not its deletion counts."""
    return sum(1 for r in server.requests if r.method == "GET" and r.path == LIST and not is_count(r))


def counts(server: FakeOctanistServer) -> int:
    return sum(1 for r in server.requests if is_count(r))


def gets(server: FakeOctanistServer, lead_id: str) -> int:
    return server.request_count("GET", f"{LIST}/{lead_id}")


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(scenario(), 30)
        finally:
            assert status_feed.active_feeds() == 0, "the last trigger to leave stops the feed"

    return asyncio.run(bounded())


class Printed:
    """What the test printed so far (Airflow 3 logs through structlog to stdout)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._text = ""

    def lines(self, containing: str) -> list[str]:
        captured = self._capsys.readouterr()
        self._text += captured.out + captured.err
        return [line for line in self._text.splitlines() if containing in line]


def server_now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- one request per interval, each trigger woken for its own lead ---------------------------------


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


# -- the places where a change could slip through ---------------------------------------------------


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


def test_round_2_case_2_under_a_page_cap_a_win_is_seen_within_a_poll(
    server: FakeOctanistServer, ticker: Ticker
) -> None:
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


# -- round 2, case 6: a lead deleted while its trigger waits on the feed ----------------------------

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


async def cancelled(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_round_2_case_6_a_deleted_lead_fires_not_found_within_a_poll_and_the_others_keep_waiting(
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
        await cancelled([task for i, task in enumerate(tasks) if i != 2])

    run(scenario)


def test_round_2_case_6_a_lead_created_after_the_feed_started_and_then_deleted_fires_not_found(
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
        await cancelled(first)

    run(scenario)


def test_round_2_case_6_a_deleted_lead_nobody_waits_for_costs_one_read_per_trigger_and_no_event(
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
        await cancelled(tasks)

    run(scenario)


def test_round_2_case_6_a_trigger_joining_a_running_feed_is_covered_without_another_read(
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
        await cancelled(first)

    run(scenario)


def test_round_2_case_6_a_failing_count_is_part_of_its_poll_and_the_next_count_covers_the_gap(
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
        await cancelled(tasks[:1])

    run(scenario)
    assert len(Printed(capsys).lines("could not count leads")) == 1


def test_round_2_case_6_a_server_refusing_the_count_filter_is_said_once_and_the_feed_goes_on(
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


def test_join_leave_bookkeeping_of_cursors() -> None:
    feed = status_feed.StatusFeed("c", 60.0, logging.getLogger(__name__))
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    feed.position = Cursor(t0 + timedelta(seconds=10), frozenset({"a"}))
    feed._cover(Cursor(t0 + timedelta(seconds=20)))  # later bound: nothing to do
    assert feed.position == Cursor(t0 + timedelta(seconds=10), frozenset({"a"}))
    feed._cover(Cursor(t0 + timedelta(seconds=10)))  # same instant, but "a" was handled: re-read it
    assert feed.position == Cursor(t0 + timedelta(seconds=10))
    feed._cover(Cursor(t0))
    assert feed.position == Cursor(t0)


# -- timeouts, errors, fallback -------------------------------------------------------------------


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


def fallback_line_of_a_lead_polled_until_won(
    server: FakeOctanistServer, lead: str, capsys: pytest.CaptureFixture[str]
) -> str:
    """Run one trigger that polls ``lead`` on its own until it is won; its one line saying why."""

    async def scenario() -> list[list[dict[str, Any]]]:
        tasks = start(trigger(lead, poll_interval=0.02))
        await until(lambda: gets(server, lead) >= 3, "the trigger to poll its lead on its own")
        server.set_status(lead, "won")
        return await results(tasks)

    ((event,),) = run(scenario)
    assert event["status"] == "success"
    [line] = Printed(capsys).lines("cannot serve")
    assert len(line) < 1_000, f"{len(line)} characters in one log line"
    return line


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


# -- visibility and clean-up ----------------------------------------------------------------------


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


@pytest.fixture
def hook_shares(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Every async hook taking a share of the shared client, and every one giving it back."""
    opened: list[int] = []
    closed: list[int] = []
    original_client, original_close = OctanistAsyncHook._shared_client, OctanistAsyncHook.aclose

    async def counting_client(self: OctanistAsyncHook) -> Any:
        if self._shared is None:
            opened.append(1)
        return await original_client(self)

    async def counting_close(self: OctanistAsyncHook) -> None:
        if self._shared is not None:
            closed.append(1)
        await original_close(self)

    monkeypatch.setattr(OctanistAsyncHook, "_shared_client", counting_client)
    monkeypatch.setattr(OctanistAsyncHook, "aclose", counting_close)
    return opened, closed


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
