"""
What the status-feed tests share: the ``Ticker`` that drives polls, triggers run as the triggerer
runs them, and counts of the fake server's requests by kind.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.triggers._status import feed as status_feed
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import pytest

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
