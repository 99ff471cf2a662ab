"""
One change feed for every lead-status trigger of a connection and poll interval in an event loop.

A trigger talks to its feed through three calls: :func:`join` (a ``Seat``), ``Seat.next_news``
and ``Seat.leave`` (plus ``Seat.checked`` after a read the feed asked for).

A triggerer runs all its triggers in one event loop, so the status triggers waiting on leads of
one connection can share one poll of ``GET /leads?updatedAt[gte]=…&sort=updatedAt:asc`` (see
``changes``): one list request per poll interval, plus one per 100 changed leads, however many
triggers wait. Each change is handed only to the triggers waiting on that lead (a dict lookup);
the others are not woken. A deleted lead leaves the listings without a change to list, so each
poll also counts the leads created before a bound in the past (``deletions``: one small request,
two when a lead created after the bound joins); only when that count changes are the triggers
whose lead could be the deleted one asked to read their lead once.

**Where the feed starts, and why no change is missed.** A trigger joins in this order:

1. it reads its lead once with ``GET /leads/{id}`` (which answers at once if the lead is already
   in a target or failure status) and takes the server's time of that answer, ``T``
   (``meta.timestamp``), never the triggerer's clock;
2. it subscribes with the lower bound ``B = T - CLOCK_MARGIN`` (no ids handled at ``B``).

The state the trigger saw was read by the server before it stamped ``T``, and ``CLOCK_MARGIN``
allows for the read happening up to that long before the stamp (and for API servers whose clocks
differ by as much). Every change of the lead that the answer did not show is therefore stamped
``updatedAt >= B``. The feed guarantees each subscriber every change at or after its bound:

- the first subscriber starts the feed at ``B``;
- a subscriber joining while a poll is in flight receives that poll's result if the poll started
  at or before ``B``; otherwise, and when no poll is in flight, the feed's next poll starts at
  the earlier of where it stands and ``B`` (a rewind, which re-reads at most ``CLOCK_MARGIN`` of
  changes in practice, as ``T`` is the server's "now");
- from one poll to the next the position only moves past changes that were handed out
  (``fetch_changes`` pages by keyset, restarts at page 1 from the newest ``updatedAt`` seen, and
  keeps the ids handled at equal instants), so nothing between two polls is skipped.

A lead row the feed hands out is its state when the list was read; a row older than what the
trigger's own read showed (``updatedAt`` before it) is ignored, so a lead is never judged on a
stale state. A trigger fires once and leaves, so each trigger reports a lead exactly once, however
many triggers wait on it and however often a change is re-read after a rewind.

**When the feed cannot serve.** The API rejects the filter or sort (a 4xx other than a rejected
key on the list call): every subscriber is told to fall back to its own ``GET /leads/{id}``
polling, and later joiners of that connection and interval do so at once for a while. A rejected
key is an error for every subscriber, as it would be for its own poll. Transient errors are
reported to every subscriber, which counts them against its ``max_consecutive_errors``; the feed
backs off as one trigger would.

Imports nothing heavy: the hook comes with ``LeadSource`` on first use.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._backoff import backoff_seconds, is_transient
from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist._timestamps import parse_timestamp
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistError
from airflow_provider_octanist.triggers._feed import lead_source
from airflow_provider_octanist.triggers._feed.lead_source import LeadSource
from airflow_provider_octanist.triggers._feed.server_clock import believable
from airflow_provider_octanist.triggers._status.deletions import DeletionCheck, created_at
from airflow_provider_octanist.triggers._status.refusals import FeedKey, recent_refusal, remember_refusal
from airflow_provider_octanist.triggers._status.subscription import Subscription

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_octanist._keyset.cursor import RawLead
    from airflow_provider_octanist.triggers._feed.changes import Changes
    from airflow_provider_octanist.triggers._feed.health import FeedHealth
    from airflow_provider_octanist.triggers._status.subscription import News

CLOCK_MARGIN = timedelta(seconds=5)
"""How far before the server's answer time a joining trigger's feed must start (see the module)."""


def place(lead: RawLead, server_time: str | None) -> tuple[Cursor, datetime | None] | str:
    """
    Where the feed must start for a trigger that read ``lead`` in an answer stamped ``server_time``.

    Returns the lower bound and the ``updatedAt`` of the state read (``None`` when it lies after the
    server's time, a lead dated in the future), or why the feed cannot serve this lead.

    :param lead: the lead as ``GET /leads/{id}`` returned it.
    :param server_time: the answer's ``meta.timestamp``.
    """
    now = believable(parse_timestamp(server_time))
    if now is None:
        return f"Octanist's answer carried no believable server time (meta.timestamp {server_time!r})"
    at = parse_timestamp(lead.get("updatedAt"))
    if at is None:
        return "the lead has no readable updatedAt, so the change feed cannot place its changes"
    return Cursor(now - CLOCK_MARGIN), (at if at <= now else None)


class StatusFeed:
    """
    The shared poll of one connection and poll interval in one event loop.

    :param octanist_conn_id: the connection to list with.
    :param poll_interval: seconds between polls.
    :param logger: where the feed logs (the first trigger's logger).
    """

    def __init__(self, octanist_conn_id: str, poll_interval: float, logger: Any) -> None:
        self.octanist_conn_id = octanist_conn_id
        self.poll_interval = poll_interval
        self.log = logger
        self.subscribers: dict[str, set[Subscription]] = {}
        self.size = 0
        self.polls = 0
        """Successful polls so far."""
        self.position: Cursor | None = None
        self._in_flight: Cursor | None = None
        self._rewind: Cursor | None = None
        self._streak = 0
        self._max_backoff: dict[Subscription, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._health: FeedHealth | None = None
        self.refused: str | None = None
        self.deletions: DeletionCheck | None = None
        """The count that notices deleted leads; made with the poll loop's notes."""

    # -- membership ----------------------------------------------------------------------------

    def join(self, subscription: Subscription, max_backoff: float) -> None:
        """Hand ``subscription`` every change of its lead at or after its bound, from now on."""
        self.subscribers.setdefault(subscription.lead_id, set()).add(subscription)
        self.size += 1
        self._max_backoff[subscription] = max_backoff
        if self.deletions is not None:
            self.deletions.join(subscription)
        self._cover(subscription.since)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="octanist-status-feed")
            self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # A poll loop that died of a bug must not leave its triggers waiting for nothing.
        exc = None if task.cancelled() else task.exception()
        if exc is None:
            return
        self.log.error("The shared lead-status feed of connection %r stopped: %r", self.octanist_conn_id, exc)
        for subscription in self._everyone():
            subscription.stop(exc)

    def leave(self, subscription: Subscription) -> bool:
        """Stop handing ``subscription`` anything; ``True`` when it was the last one."""
        waiting = self.subscribers.get(subscription.lead_id)
        if waiting is not None and subscription in waiting:
            waiting.discard(subscription)
            self.size -= 1
            if not waiting:
                del self.subscribers[subscription.lead_id]
        self._max_backoff.pop(subscription, None)
        return self.size == 0

    @property
    def ended(self) -> bool:
        """Whether the poll loop is over (refused, or stopped by a bug): it takes no new subscribers."""
        return self._task is not None and self._task.done()

    async def stop(self) -> None:
        """End the poll loop and close its hook."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _cover(self, bound: Cursor) -> None:
        """Make sure the feed hands out every change at or after ``bound``."""
        if self._in_flight is not None:
            if not _admits_all_from(self._in_flight, bound):
                self._rewind = bound if self._rewind is None else Cursor.earliest((self._rewind, bound))
        elif self.position is None:
            self.position = bound
        elif not _admits_all_from(self.position, bound):
            self.position = Cursor.earliest((self.position, bound))

    # -- the poll loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        source = LeadSource(self.octanist_conn_id, self.poll_interval, self.log, kind="status_feed")
        self._health = source.health
        self.deletions = deletions = DeletionCheck(source.notes, CLOCK_MARGIN)
        try:
            while self.size:
                start = self.position
                if start is None:  # unreachable: join() places the feed before starting it
                    return
                polled = loop.time()
                self._in_flight = start
                try:
                    changes = await source.fetch(start)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._in_flight = None
                    source.health.failed(exc)
                    if self._rewind is not None:
                        self.position = Cursor.earliest((start, self._rewind))
                        self._rewind = None
                    wait = self._failed(exc)
                    if wait is None:
                        return
                    await self._wait(wait)
                    continue
                if changes.complete:
                    # Part of this poll (its failures are never the poll's), made while the poll is
                    # still in flight so that a trigger joining meanwhile is covered by a rewind.
                    await deletions.after_poll(source.hook, changes.server_time, self._everyone())
                self._in_flight = None
                self._handed_out(changes)
                if changes.complete:
                    await self._wait(max(0.0, polled + self.poll_interval - loop.time()))
        finally:
            await source.aclose()

    def _handed_out(self, changes: Changes) -> None:
        end = changes.end
        if self._rewind is not None:
            end = Cursor.earliest((end, self._rewind))
            self._rewind = None
        self.position = end
        self.polls += 1
        recovered = self._streak > 0
        self._streak = 0
        delivered = 0
        for change in changes.changes:
            for subscription in tuple(self.subscribers.get(change.lead_id, ())):
                delivered += subscription.deliver(change)
        if self._health is not None:
            self._health.reported(delivered)
        if recovered:
            for subscription in self._everyone():
                subscription.polls_recovered()

    def _failed(self, exc: Exception) -> float | None:
        """Tell every subscriber about a failed poll; the seconds to wait, or ``None`` to stop."""
        everyone = self._everyone()
        if is_transient(exc):
            self._streak += 1
            for subscription in everyone:
                subscription.poll_failed(str(exc))
            cap = min(self._max_backoff.values(), default=self.poll_interval)
            wait = backoff_seconds(self._streak, self.poll_interval, max(cap, self.poll_interval))
            self.log.warning(
                "The shared lead-status feed of connection %r could not list lead changes "
                "(%d failed poll(s) in a row), next poll in %.1f s: %s",
                self.octanist_conn_id,
                self._streak,
                wait,
                exc,
            )
            return wait
        if isinstance(exc, OctanistAuthError) or not isinstance(exc, OctanistError):
            # Polling cannot go on: each trigger reports it as it would for its own poll.
            for subscription in everyone:
                subscription.stop(exc)
            return lead_source.SLOW_RETRY_SECONDS
        # A 4xx on the list call: the API refuses the feed's filter or sort.
        self.refused = f"GET /leads with an updatedAt filter and sort was refused: {exc}"
        self.log.warning(
            "The shared lead-status feed of connection %r cannot be used (%s); its %d trigger(s) poll "
            "their leads one by one.",
            self.octanist_conn_id,
            exc,
            self.size,
        )
        for subscription in everyone:
            subscription.fall_back(self.refused)
        return None

    def _everyone(self) -> list[Subscription]:
        return [s for waiting in self.subscribers.values() for s in waiting]

    async def _wait(self, seconds: float) -> None:
        await sleep(seconds)


async def sleep(seconds: float) -> None:
    """How a feed waits between polls (tests replace it to drive polls one by one)."""
    await lead_source.sleep(seconds)


def _admits_all_from(position: Cursor, bound: Cursor) -> bool:
    """Whether a poll from ``position`` hands out every change at or after ``bound`` (no ids)."""
    return position.at < bound.at or (position.at == bound.at and not position.ids)


# -- one feed per event loop, connection and poll interval ------------------------------------

_FEEDS: dict[FeedKey, StatusFeed] = {}


def refused(octanist_conn_id: str, poll_interval: float) -> str | None:
    """Why the API refused this connection's feed in this event loop lately, if it did."""
    key = (asyncio.get_running_loop(), octanist_conn_id, poll_interval)
    feed = _FEEDS.get(key)
    if feed is not None and feed.refused is not None:
        return feed.refused
    return recent_refusal(key)


class Seat:
    """
    A trigger's seat in a feed: the trigger's whole interface to it once it joined.

    :param feed: the feed joined.
    :param subscription: the trigger's place in it; only the feed and its deletion check change it.
    """

    __slots__ = ("_feed", "_polls_at_join", "_subscription")

    def __init__(self, feed: StatusFeed, subscription: Subscription) -> None:
        self._feed = feed
        self._subscription = subscription
        self._polls_at_join = feed.polls

    @property
    def fallback(self) -> str | None:
        """Why the feed cannot serve the trigger, once it said so."""
        return self._subscription.fallback

    async def next_news(self, timeout: float | None) -> News:
        """
        What the feed said since the last call, once it says something or ``timeout`` seconds passed.

        ``None`` takes what it said so far at once (the first call after joining). The lead row and
        an ask to read the lead are handed over once.
        """
        if timeout is not None:
            await self._subscription.wait(timeout)
        return self._subscription.take(self._feed.polls - self._polls_at_join)

    def checked(self, *, ok: bool) -> News:
        """The trigger read its lead as the feed asked (``ok``: it exists); what the feed says now."""
        self._subscription.checked(ok=ok)
        return self._subscription.status(self._feed.polls - self._polls_at_join)

    async def leave(self) -> None:
        """Leave the feed; the last one to leave stops its poll loop and closes its hook."""
        feed = self._feed
        key = (asyncio.get_running_loop(), feed.octanist_conn_id, feed.poll_interval)
        if feed.refused is not None:
            remember_refusal(key, feed.refused)
        if feed.leave(self._subscription):
            if _FEEDS.get(key) is feed:
                del _FEEDS[key]
            await feed.stop()


def join(
    octanist_conn_id: str,
    poll_interval: float,
    lead_id: str,
    lead: RawLead,
    placed: tuple[Cursor, datetime | None],
    *,
    read_from: float,
    max_backoff: float,
    logger: Any,
) -> Seat:
    """
    Join the feed of this connection and poll interval in the running loop (started if needed).

    :param lead_id: the lead the trigger waits on.
    :param lead: the lead as the trigger read it.
    :param placed: where the feed must start for it and the ``updatedAt`` read (see :func:`place`).
    :param read_from: when (``time.monotonic()``) that read began.
    :param max_backoff: the trigger's longest wait between failed polls.
    :param logger: where a feed started here logs.
    """
    since, seen_at = placed
    subscription = Subscription(lead_id, since, seen_at, created_at=created_at(lead), read_from=read_from)
    loop = asyncio.get_running_loop()
    for stale in [k for k in list(_FEEDS) if k[0].is_closed()]:
        _FEEDS.pop(stale, None)
    key = (loop, octanist_conn_id, poll_interval)
    feed = _FEEDS.get(key)
    if feed is None or feed.refused is not None or feed.ended:
        feed = _FEEDS[key] = StatusFeed(octanist_conn_id, poll_interval, logger)
    feed.join(subscription, max_backoff)
    return Seat(feed, subscription)


def active_feeds() -> int:
    """How many feeds run in this process (for tests and benchmarks)."""
    return len(_FEEDS)


def feed_of(octanist_conn_id: str, poll_interval: float) -> StatusFeed | None:
    """The feed of this connection and poll interval in the running loop, if one runs (for tests)."""
    return _FEEDS.get((asyncio.get_running_loop(), octanist_conn_id, float(poll_interval)))
