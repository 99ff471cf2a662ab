"""
``Subscription``, ``Wake`` and ``News`` on their own: tables of what the feed says and what the trigger takes.

No server and no feed: each row drives a subscription through the calls the feed and its deletion
check make, and states what the trigger's next ``News`` must say.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_octanist._keyset.cursor import Change, Cursor
from airflow_provider_octanist.triggers._status.subscription import News, Subscription, Wake, as_lead

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def change(ms: int, status: str = "qualified") -> Change:
    moment = at(ms)
    return Change(moment, "lead_1", {"id": "lead_1", "status": status, "updatedAt": moment.isoformat()})


def subscription(seen_at_ms: int | None = 0) -> Subscription:
    seen_at = None if seen_at_ms is None else at(seen_at_ms)
    return Subscription("lead_1", Cursor(T0 - timedelta(seconds=5)), seen_at)


@pytest.mark.parametrize(
    ("seen_at", "delivered", "news", "newest", "handed"),
    [
        # A row older than what the trigger read is stale: neither handed over nor news.
        (0, [-1], [False], 0, None),
        # A row as old as the newest is handed over again (two changes in one millisecond), not news.
        (0, [0], [False], 0, 0),
        (0, [1], [True], 1, 1),
        # A trigger that read a lead dated in the future takes every row.
        (None, [-5], [True], -5, -5),
        # A row older than the newest handed out but not than the read: handed over, not news.
        (0, [2, 1], [True, False], 2, 1),
        (0, [1, 1, 3], [True, False, True], 3, 3),
    ],
)
def test_deliver_hands_over_what_is_not_stale_and_counts_only_newer_rows(
    seen_at: int | None, delivered: list[int], news: list[bool], newest: int, handed: int | None
) -> None:
    s = subscription(seen_at)
    assert [s.deliver(change(ms)) for ms in delivered] == news
    assert s.newest == at(newest)
    taken = s.take(polls=0)
    assert (taken.lead["updatedAt"] if taken.lead else None) == (
        None if handed is None else at(handed).isoformat()
    )


def test_the_newest_row_handed_out_never_moves_what_the_trigger_read() -> None:
    s = subscription(0)
    s.deliver(change(10_000))  # a row dated in the future
    assert s.seen_at == at(0)
    assert s.deliver(change(5)) is False, "an older row is handed over but is no news"
    assert s.take(polls=0).lead is not None


RAISE = RuntimeError("the poll loop broke")


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([], News()),
        ([("poll_failed", "503")], News(failures=1, last_error="503")),
        ([("poll_failed", "503"), ("poll_failed", "timeout")], News(failures=2, last_error="timeout")),
        # A good poll starts the count again; the last error stays for the timeout message.
        ([("poll_failed", "503"), ("polls_recovered",)], News(failures=0, last_error="503")),
        ([("stop", RAISE)], News(fatal=RAISE)),
        ([("fall_back", "refused")], News(fallback="refused")),
        ([("ask_to_check",)], News(check=True)),
        ([("ask_to_check",), ("ask_to_check",)], News(check=True)),
    ],
)
def test_what_the_feed_says_is_what_the_trigger_takes(calls: list[tuple[Any, ...]], expected: News) -> None:
    s = subscription()
    for name, *args in calls:
        getattr(s, name)(*args)
    assert s.take(polls=0) == expected


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("deliver", (change(1),)),
        ("poll_failed", ("503",)),
        ("stop", (RAISE,)),
        ("fall_back", ("x",)),
        ("ask_to_check", ()),
    ],
)
def test_whatever_the_feed_says_wakes_the_trigger(name: str, args: tuple[Any, ...]) -> None:
    s = subscription()

    async def waits() -> None:
        waiting = asyncio.ensure_future(s.wait(timeout=60))
        await asyncio.sleep(0)
        assert not waiting.done()
        getattr(s, name)(*args)
        await asyncio.wait_for(waiting, 5)

    asyncio.run(waits())


def test_the_lead_row_and_the_ask_to_read_are_taken_once_the_rest_is_state() -> None:
    s = subscription()
    s.deliver(change(1, "won"))
    s.ask_to_check()
    s.poll_failed("503")
    first = s.take(polls=3)
    assert first.lead is not None
    assert (first.check, first.failures, first.polls) == (True, 1, 3)
    second = s.take(polls=4)
    assert (second.lead, second.check, second.failures, second.polls) == (None, False, 1, 4)


def test_status_tells_the_state_without_taking_the_news() -> None:
    s = subscription()
    s.deliver(change(1))
    s.ask_to_check()
    assert s.status(polls=1) == News(polls=1)
    taken = s.take(polls=1)
    assert taken.lead is not None
    assert taken.check


@pytest.mark.parametrize(
    ("covered", "ok", "expected"),
    [
        # (covered, doubt) after the read the feed asked for.
        (False, True, (True, False)),
        (False, False, (False, True)),
        (True, False, (True, True)),
        (True, True, (True, False)),
    ],
)
def test_a_read_the_feed_asked_for_covers_the_lead_or_leaves_a_doubt(
    covered: bool, ok: bool, expected: tuple[bool, bool]
) -> None:
    s = subscription()
    s.set_covered(covered)
    s.checked(ok=ok)
    assert (s.covered, s.doubt) == expected


def test_taking_the_news_clears_the_wake_and_a_timeout_sets_it() -> None:
    s = subscription()

    async def scenario() -> None:
        s.poll_failed("503")
        await asyncio.wait_for(s.wait(timeout=60), 5)  # set: at once
        s.take(polls=0)
        waiting = asyncio.ensure_future(s.wait(timeout=0.01))
        await asyncio.sleep(0)
        assert not waiting.done(), "taken: the next wait waits"
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


def test_a_wake_set_before_the_wait_ends_it_at_once_and_clear_rearms_it() -> None:
    wake = Wake()

    async def scenario() -> None:
        wake.set()
        await asyncio.wait_for(wake.wait(), 5)
        wake.clear()
        waiting = asyncio.ensure_future(wake.wait())
        await asyncio.sleep(0)
        assert not waiting.done()
        wake.set()
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("row", "status"),
    [
        ({"id": "a", "status": "won"}, "won"),
        ({"id": "a", "status": "win"}, "won"),  # the legacy spelling, canonical as GET /leads/{id} has it
        ({"id": "a", "status": "WON"}, "won"),
        ({"id": "a", "status": "archived"}, "archived"),  # unknown: kept as the server wrote it
        ({"id": "a"}, None),
    ],
)
def test_a_row_of_the_list_is_handed_over_with_its_status_in_canonical_spelling(
    row: dict[str, Any], status: str | None
) -> None:
    lead = as_lead(row)
    assert lead.get("status") == status
    assert lead is not row
