"""
One change feed for every lead-status trigger of a connection and poll interval in an event loop.

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
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._backoff import backoff_seconds, is_transient
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap
from airflow_provider_octanist._timestamps import parse_timestamp, whole_millisecond
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistError
from airflow_provider_octanist.statuses import status_of
from airflow_provider_octanist.triggers._feed import lead_source
from airflow_provider_octanist.triggers._feed.changes import FeedNotes, ids_in_millisecond
from airflow_provider_octanist.triggers._feed.cursor import Cursor
from airflow_provider_octanist.triggers._feed.deletions import DeletionCheck
from airflow_provider_octanist.triggers._feed.keyset import RepeatingPagesError
from airflow_provider_octanist.triggers._feed.lead_source import LeadSource
from airflow_provider_octanist.triggers._feed.server_clock import believable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._feed.changes import Changes
    from airflow_provider_octanist.triggers._feed.cursor import Change, RawLead
    from airflow_provider_octanist.triggers._feed.health import FeedHealth

CLOCK_MARGIN = timedelta(seconds=5)
"""How far before the server's answer time a joining trigger's feed must start (see the module)."""

UNSERVABLE_FOR = 3600.0
"""Seconds that a feed the API refused stays refused: joiners poll on their own meanwhile."""


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


async def unlisted(
    hook: OctanistAsyncHook, lead: RawLead, poll_interval: float, deadline: float | None = None
) -> str | None:
    """
    Why ``GET /leads`` does not show ``lead`` (as ``GET /leads/{id}`` returned it); ``None`` when it does.

    The feed sees a lead only through listings by ``updatedAt``, so this lists the millisecond of
    the lead's own ``updatedAt`` (one request, more only when that millisecond holds over 100
    leads). A lead that changed since it was read is missing too: the caller reads it again before
    it concludes. A transient failure is no answer (``None``): the feed's own polls report those.
    A refused listing (a 4xx) is an answer for every trigger of the connection and poll interval
    (see :func:`refused`); a rejected key is raised. ``deadline`` (``time.time()`` seconds) bounds
    the wait, as the trigger's end time bounds its own reads.

    Triggers whose leads share a millisecond (a bulk update, an import) share one listing of it,
    for a poll interval: a thousand sensors restarted on leads of one bulk update read its pages
    once, not a thousand times each (which, besides the requests, held that many pages in memory).
    """
    at = parse_timestamp(lead.get("updatedAt"))
    if at is None:
        return "the lead has no readable updatedAt"
    listing = _Listing.of(hook, whole_millisecond(at), poll_interval)
    listing.waiters += 1
    try:
        if deadline is None:
            shown = await asyncio.shield(listing.task)
        else:
            from airflow_provider_octanist._deadline import within

            shown = await within(max(0.0, deadline - time.time()), asyncio.shield(listing.task))
    except asyncio.TimeoutError:
        return None
    finally:
        listing.left()
    if shown is None or isinstance(shown, str):
        return shown
    if lead.get("id") in shown:
        return None
    return (
        f"GET /leads does not show the lead: it is missing from the listing of its own "
        f"updatedAt {cap(str(lead.get('updatedAt')), MAX_SERVER_WORD)}"
    )


class _Listing:
    """
    The listing of one millisecond of ``updatedAt`` that triggers of one event loop and connection share.

    It runs while a trigger waits for it and is cancelled when the last one leaves (a sensor that
    timed out or was cancelled): no request goes out for a trigger that is gone. Its answer serves
    triggers that ask within a poll interval of its start.
    """

    __slots__ = ("began", "task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.began = time.monotonic()
        self.waiters = 0

    @classmethod
    def of(cls, hook: OctanistAsyncHook, start: datetime, poll_interval: float) -> _Listing:
        """The listing of the millisecond ``start`` under way or done within ``poll_interval``, else new."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        for key in [k for k, known in _LISTINGS.items() if known.expired(now, poll_interval)]:
            del _LISTINGS[key]
        key = (loop, hook.octanist_conn_id, start)
        known = _LISTINGS.get(key)
        if known is None:
            known = _LISTINGS[key] = cls(loop.create_task(_list_millisecond(hook, start, poll_interval)))
        return known

    def left(self) -> None:
        """One trigger stopped waiting; the last one to go cancels a listing still under way."""
        self.waiters -= 1
        if self.waiters <= 0 and not self.task.done():
            self.task.cancel()

    def expired(self, now: float, poll_interval: float) -> bool:
        task = self.task
        if task.get_loop().is_closed():
            return True
        if not task.done():
            return False
        # A failure is nobody's answer for long: the next trigger lists again.
        failed = task.cancelled() or task.exception() is not None or task.result() is None
        return failed or now - self.began > poll_interval


async def _list_millisecond(hook: OctanistAsyncHook, start: datetime, poll_interval: float) -> Any:
    """
    The ids ``GET /leads`` lists in the millisecond ``start``, a refusal's reason, or ``None`` (failed).

    Read as the change feed reads one instant (``changes.ids_in_millisecond``: pages that repeat
    stop it, and so does a cap on pages). With a hook of its own, closed when the listing ends: the
    trigger that started it may be gone by then, its hook closed, while other triggers still wait.
    """
    async with type(hook)(octanist_conn_id=hook.octanist_conn_id) as lister:
        try:
            notes = _LISTING_NOTES.setdefault(hook.octanist_conn_id, FeedNotes())
            return await ids_in_millisecond(lister, start, notes)
        except OctanistAuthError:
            raise
        except OctanistError as exc:
            if is_transient(exc) and not isinstance(exc, RepeatingPagesError):
                return None
            reason = f"GET /leads with an updatedAt filter and sort was refused: {exc}"
            _remember_refusal((asyncio.get_running_loop(), hook.octanist_conn_id, poll_interval), reason)
            return reason


_LISTINGS: dict[tuple[asyncio.AbstractEventLoop, str, datetime], _Listing] = {}
"""The listing of one millisecond of ``updatedAt`` per event loop and connection."""

_LISTING_NOTES: dict[str, FeedNotes] = {}
"""What the millisecond listings of each connection learnt about the API (said once, not per listing)."""


def as_lead(row: RawLead) -> dict[str, Any]:
    """A lead row of the list with its status in canonical spelling, as ``GET /leads/{id}`` gives it."""
    status = status_of(row)
    if status is not None and status != row.get("status"):
        return {**row, "status": status}
    return dict(row)


class Wake:
    """
    ``asyncio.Event`` for the one trigger that waits on it, without the Event's queue of waiters.

    A triggerer holds one per waiting sensor; an empty ``deque`` alone is over 600 bytes.
    """

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Set the flag and end the wait, if the trigger waits."""
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        """Clear the flag: the next ``wait`` waits for the next ``set``."""
        self._flag = False

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._flag

    async def wait(self) -> None:
        """Return once the flag is set (at once if it is)."""
        if self._flag:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None


class Subscription:
    """
    One trigger's place in a feed: what the feed has told it since it joined.

    The feed writes, the trigger reads after ``wake`` is set; nothing here is awaited by the feed.

    :param lead_id: the lead the trigger waits on.
    :param since: the lower bound the trigger needs (see the module docstring).
    :param seen_at: ``updatedAt`` of the state the trigger read itself; older rows are stale.
    :param created_at: the lead's ``createdAt`` (``None`` when unknown), for the deletion check.
    :param read_from: when (``time.monotonic()``) the trigger's read of its lead began.
    """

    __slots__ = (
        "check",
        "covered",
        "created_at",
        "doubt",
        "failures",
        "fallback",
        "fatal",
        "last_error",
        "lead",
        "lead_id",
        "newest",
        "polls_at_join",
        "read_from",
        "seen_at",
        "since",
        "wake",
    )

    def __init__(
        self,
        lead_id: str,
        since: Cursor,
        seen_at: datetime | None,
        *,
        created_at: datetime | None = None,
        read_from: float = float("-inf"),
    ) -> None:
        self.lead_id = lead_id
        self.since = since
        self.seen_at = seen_at
        self.created_at = created_at
        self.read_from = read_from
        self.check = False
        """The feed asks the trigger to read its lead once (it may have been deleted)."""
        self.covered = False
        """The feed's deletion count is known to include the lead (see ``deletions``)."""
        self.doubt = False
        """The last read the feed asked for failed: it asks again at the next poll."""
        self.newest = seen_at
        """``updatedAt`` of the newest row handed out (or read), for counting news."""
        self.wake = Wake()
        self.lead: RawLead | None = None
        """The newest row of the lead the feed handed out, if any."""
        self.failures = 0
        """Feed polls in a row that failed with transient errors since the last good one."""
        self.last_error: str | None = None
        self.fatal: BaseException | None = None
        """A non-transient error of the feed's list call (a rejected key): polling cannot go on."""
        self.fallback: str | None = None
        """Why the feed cannot serve this trigger; it polls on its own from then on."""
        self.polls_at_join = 0

    def deliver(self, change: Change) -> bool:
        """
        Hand ``change`` over unless it is older than what the trigger has; whether it is newer.

        A row as old as the newest one handed out is handed over again (two changes may share a
        millisecond) but does not count as news.
        """
        if self.seen_at is not None and change.at < self.seen_at:
            return False
        # Only counted: ``seen_at`` stays what the trigger read, so a row dated in the future
        # cannot make the lead's later, real changes look stale.
        news = self.newest is None or change.at > self.newest
        if news:
            self.newest = change.at
        self.lead = change.lead
        self.wake.set()
        return news

    def ask_to_check(self) -> None:
        """Wake the trigger to read its lead once (``check`` is set by the deletion check)."""
        self.wake.set()

    def checked(self, *, ok: bool) -> None:
        """The trigger read its lead as asked: it exists (``ok``), or the read failed."""
        self.covered = self.covered or ok
        self.doubt = not ok


class StatusFeed:
    """
    The shared poll of one connection and poll interval in one event loop.

    :param octanist_conn_id: the connection to list with.
    :param poll_interval: seconds between polls.
    :param logger: where the feed logs (the first trigger's logger).
    :param sleep: how the feed waits between polls (tests pass their own).
    """

    def __init__(
        self,
        octanist_conn_id: str,
        poll_interval: float,
        logger: Any,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.octanist_conn_id = octanist_conn_id
        self.poll_interval = poll_interval
        self.log = logger
        self._sleep = sleep
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
        subscription.polls_at_join = self.polls
        if self.deletions is not None:
            self.deletions.join(subscription)
        self._cover(subscription.since)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="octanist-status-feed")
            self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        # A poll loop that died of a bug must not leave its triggers waiting for nothing.
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.log.error("The shared lead-status feed of connection %r stopped: %r", self.octanist_conn_id, exc)
        for subscription in self._everyone():
            subscription.fatal = exc
            subscription.wake.set()

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
                subscription.failures = 0

    def _failed(self, exc: Exception) -> float | None:
        """Tell every subscriber about a failed poll; the seconds to wait, or ``None`` to stop."""
        everyone = self._everyone()
        if is_transient(exc):
            self._streak += 1
            for subscription in everyone:
                subscription.failures += 1
                subscription.last_error = str(exc)
                subscription.wake.set()
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
                subscription.fatal = exc
                subscription.wake.set()
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
            subscription.fallback = self.refused
            subscription.wake.set()
        return None

    def _everyone(self) -> list[Subscription]:
        return [s for waiting in self.subscribers.values() for s in waiting]

    async def _wait(self, seconds: float) -> None:
        await (self._sleep or sleep)(seconds)


async def sleep(seconds: float) -> None:
    """How a feed waits between polls (tests replace it to drive polls one by one)."""
    await lead_source.sleep(seconds)


def _admits_all_from(position: Cursor, bound: Cursor) -> bool:
    """Whether a poll from ``position`` hands out every change at or after ``bound`` (no ids)."""
    return position.at < bound.at or (position.at == bound.at and not position.ids)


# -- one feed per event loop, connection and poll interval ------------------------------------

_FeedKey = tuple[asyncio.AbstractEventLoop, str, float]
_FEEDS: dict[_FeedKey, StatusFeed] = {}
_REFUSED: dict[_FeedKey, tuple[str, float]] = {}


def _remember_refusal(key: _FeedKey, reason: str) -> None:
    """Joiners of this loop, connection and interval poll alone for :data:`UNSERVABLE_FOR` seconds."""
    _REFUSED[key] = (reason, time.monotonic())


def refused(octanist_conn_id: str, poll_interval: float) -> str | None:
    """Why the API refused this connection's feed in this event loop lately, if it did."""
    key = (asyncio.get_running_loop(), octanist_conn_id, poll_interval)
    feed = _FEEDS.get(key)
    if feed is not None and feed.refused is not None:
        return feed.refused
    entry = _REFUSED.get(key)
    if entry is None:
        return None
    reason, since = entry
    if time.monotonic() - since > UNSERVABLE_FOR:
        del _REFUSED[key]
        return None
    return reason


def subscribe(
    octanist_conn_id: str, poll_interval: float, subscription: Subscription, max_backoff: float, logger: Any
) -> StatusFeed:
    """Join the feed of this connection and poll interval in the running loop (started if needed)."""
    loop = asyncio.get_running_loop()
    for stale in [k for k in list(_FEEDS) if k[0].is_closed()]:
        _FEEDS.pop(stale, None)
    key = (loop, octanist_conn_id, poll_interval)
    feed = _FEEDS.get(key)
    if feed is None or feed.refused is not None or feed.ended:
        feed = _FEEDS[key] = StatusFeed(octanist_conn_id, poll_interval, logger)
    feed.join(subscription, max_backoff)
    return feed


async def unsubscribe(feed: StatusFeed, subscription: Subscription) -> None:
    """Leave ``feed``; the last one to leave stops its poll loop and closes its hook."""
    key = (asyncio.get_running_loop(), feed.octanist_conn_id, feed.poll_interval)
    if feed.refused is not None:
        _remember_refusal(key, feed.refused)
    if feed.leave(subscription):
        if _FEEDS.get(key) is feed:
            del _FEEDS[key]
        await feed.stop()


def active_feeds() -> int:
    """How many feeds run in this process (for tests and benchmarks)."""
    return len(_FEEDS)


def feed_of(octanist_conn_id: str, poll_interval: float) -> StatusFeed | None:
    """The feed of this connection and poll interval in the running loop, if one runs (for tests)."""
    return _FEEDS.get((asyncio.get_running_loop(), octanist_conn_id, float(poll_interval)))
