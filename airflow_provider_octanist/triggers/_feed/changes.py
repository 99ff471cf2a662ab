"""
Listing every lead changed after a cursor: keyset paging over ``GET /leads?sort=updatedAt:asc``,
checking every answer it relies on and falling back to a read that cannot skip when one fails.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._keyset.cursor import Change, Cursor, positioned
from airflow_provider_octanist._keyset.walk import (
    SORT,
    KeysetWalk,
    NumberedRead,
    Page,
    PageRequest,
    UnsortedListing,
    step,
)
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap, scrub
from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.triggers._feed.server_clock import ServerClock

if TYPE_CHECKING:
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._feed.health import FeedHealth

log = logging.getLogger(__name__)


PAGE_SIZE = 100
"""Leads per list request: the API's maximum, so a poll costs as few requests as possible."""


MAX_PAGES_PER_POLL = 1_000
"""A poll reads at most this many pages (100,000 changes) before reporting what it found."""


LATE_COMMITS = timedelta(minutes=1)
"""How long after an instant (by the server's clock) a lead stamped with it may still be committed."""


FUTURE_TOLERANCE = timedelta(minutes=1)
"""How far past the server's clock (``meta.timestamp``) an ``updatedAt`` may be and still move a cursor."""


_SAY_AGAIN_EVERY = 3600.0
"""Seconds between two log lines of one feed about a lasting condition (a clock it cannot believe)."""


@dataclass(frozen=True)
class Changes:
    """What one poll found: the changes after ``start`` (ordered, each once) and where it ended."""

    start: Cursor
    end: Cursor
    changes: tuple[Change, ...]
    complete: bool
    """False when the poll stopped at :data:`MAX_PAGES_PER_POLL`: more changes are waiting."""
    ceiling: datetime | None = None
    """No cursor may move past this instant (the server's clock plus :data:`FUTURE_TOLERANCE`)."""
    skipped: int = 0
    """Malformed leads left out of ``changes`` on this poll."""
    server_time: datetime | None = None
    """The server's clock (the latest believable ``meta.timestamp`` of the poll), if it gave one."""


@dataclass
class FeedNotes:
    """
    What one feed (a watcher, a shared poll) has learnt about the API, so it says each thing once.

    ``unsorted`` becomes true the first time a page comes back out of ``updatedAt`` order; from then
    on every poll reads its whole window by page number. ``gte_exclusive`` becomes true the first
    time the API is seen to read ``updatedAt[gte]`` as ``[gt]``; from then on every lower bound is
    asked one step earlier. ``skipped`` counts malformed leads. ``clock`` is the server's clock as
    its answers tell it.
    """

    logger: Any = None
    health: FeedHealth | None = None
    """Where a clock it cannot believe is counted (``<kind>.server_clock_unbelievable``), if anywhere."""
    unsorted: bool = False
    gte_exclusive: bool = False
    served: int = PAGE_SIZE
    """Leads on a full page as the server serves them (fewer than asked under a page cap)."""
    skipped: int = 0
    microseconds: bool = False
    """The server prints ``updatedAt`` with microseconds (seen once, kept): its smallest step."""
    clock: ServerClock = field(default_factory=ServerClock)
    _said: dict[Any, float] = field(default_factory=dict)

    def say(
        self, key: Any, message: str, *args: Any, every: float | None = None, error: bool = False
    ) -> None:
        """Log a warning (``error``: an error) the first time ``key`` comes up (and every ``every`` s)."""
        now = time.monotonic()
        said = self._said.get(key)
        if said is None or (every is not None and now - said >= every):
            self._said[key] = now
            logger = self.logger if self.logger is not None else log
            (logger.error if error else logger.warning)(message, *args)

    def server_time(self, answered: datetime | None) -> datetime | None:
        """
        The server's clock by an answer's ``meta.timestamp``, if it can be believed (see ``ServerClock``).

        One that cannot is an ERROR (once an hour) and a metric, never silence: until the clock is
        believed again the feed carries the last believed reading forward by this machine's clock.
        """
        believed = self.clock.read(answered)
        if believed is None and answered is not None:
            if self.health is not None:
                self.health.clock_unbelievable()
            self.say(
                "unbelievable clock",
                "Octanist answered with meta.timestamp %s, which cannot be the server's clock (%s); the "
                "feed goes on with %s. Leads stamped far from it may be reported late or as new. Check "
                "the Octanist server's clock. Said again every hour while it lasts.",
                cursor_timestamp(answered),
                self.clock.why_not,
                "its last believed reading, carried forward"
                if self.clock.believed_once
                else "this machine's clock",
                every=_SAY_AGAIN_EVERY,
                error=True,
            )
        return believed


async def fetch_changes(
    hook: OctanistAsyncHook,
    start: Cursor,
    *,
    status: str | None = None,
    before: datetime | None = None,
    max_pages: int = MAX_PAGES_PER_POLL,
    notes: FeedNotes | None = None,
) -> Changes:
    """
    List every lead changed after ``start``, oldest change first, checking what the walk relies on.

    Each request asks for ``updatedAt >= bound`` sorted ascending. After a page the bound moves to
    the newest ``updatedAt`` on it (remembering which ids at that instant were seen) and paging
    restarts at page 1, so a lead edited while we page moves *behind* the bound and is met again,
    never skipped. A page made entirely of one instant is read by page number inside that instant.

    What is checked, because a wrong answer here would lose leads silently:

    - every page is in ``updatedAt`` order; if not, the API ignores ``sort`` and the whole window
      after ``start`` is read page by page with its lower bound fixed and ordered here (logged once
      per feed, and every later poll of the feed reads that way);
    - the end cursor never passes the server's clock (``meta.timestamp``) plus
      :data:`FUTURE_TOLERANCE`: a lead dated in the future is reported but does not move it;
    - a malformed lead is skipped, logged once and counted, not allowed to stop the feed;
    - time filters keep the precision of the cursor (microseconds if the API returns them);
    - a page numbered walk stops at the first page with nothing new on it.

    :param hook: the async hook to list with.
    :param start: list the changes after this position.
    :param status: only leads in this status (for seeding a watcher's memory).
    :param before: only changes strictly before this instant.
    :param max_pages: stop after this many requests and report ``complete=False``.
    :param notes: what this feed already knows and said; a fresh one when not given.
    """
    walk = _Walk(hook, notes if notes is not None else FeedNotes(), status, before)
    keyset = None if walk.notes.unsorted else await walk.keyset(start, max_pages)
    if keyset is None:
        found, complete = await walk.window(start), True
    else:
        found, complete = keyset
    ceiling = walk.ceiling()
    ordered = tuple(sorted(found.values(), key=lambda change: change.key))
    end = start
    for change in ordered:
        if change.at <= ceiling:
            end = end.past(change.at, change.lead_id)
        else:
            walk.notes.say(
                ("future", change.lead_id, change.at),
                "Octanist lead %s is dated %s, after the server's clock (%s); it is reported, but the "
                "feed's position does not move past the server's clock, so later changes are still seen.",
                cap(change.lead_id, MAX_SERVER_WORD),
                cursor_timestamp(change.at),
                cursor_timestamp(ceiling - FUTURE_TOLERANCE),
            )
    return Changes(start, end, ordered, complete, ceiling, walk.skipped, walk.server_now)


class _Walk:
    """The requests of one :func:`fetch_changes` and what their answers said."""

    def __init__(
        self, hook: OctanistAsyncHook, notes: FeedNotes, status: str | None, before: datetime | None
    ) -> None:
        self.hook = hook
        self.notes = notes
        self.status = status
        self.before = before
        self.requests = 0
        self.skipped = 0
        self.server_now: datetime | None = None
        self.first_answer: datetime | None = None

    def ceiling(self) -> datetime:
        """The latest instant a cursor may reach after this walk."""
        now = self.server_now if self.server_now is not None else self.notes.clock.now()
        if self.notes.unsorted and self.first_answer is not None:
            # Read by page number, a lead edited during the walk may have been read in its old
            # state: nothing after the first answer is known complete.
            return min(now + FUTURE_TOLERANCE, self.first_answer)
        return now + FUTURE_TOLERANCE

    async def send(self, request: PageRequest) -> tuple[Page, list[Change]]:
        """One page with its placeable changes; malformed leads are counted and logged once each."""
        filters = dict(request.filters)
        if self.status is not None:
            filters["status"] = self.status
        page = await self.hook.list_leads_page(
            request.number,
            skip_malformed=True,
            sort=SORT,
            page_size=PAGE_SIZE,
            exact_time=request.exact_time,
            **filters,
        )
        self.requests += 1
        server_time = self.notes.server_time(page.server_time)
        if server_time is not None:
            self.server_now = max(self.server_now or server_time, server_time)
        self.first_answer = self.first_answer or server_time or self.notes.clock.now()
        changes, rejected = positioned(page.items, "GET /leads")
        key = (await self.hook.get_settings()).api_key
        for problem in [*page.malformed, *(scrub(text, key) for text in rejected)]:
            self.skipped += 1
            self.notes.skipped += 1
            self.notes.say(
                ("malformed", problem),
                "Skipped a malformed Octanist lead (%d so far): %s",
                self.notes.skipped,
                problem,
            )
        return page, changes

    async def keyset(
        self, start: Cursor, max_pages: int
    ) -> tuple[dict[tuple[datetime, str], Change], bool] | None:
        """Keyset paging from ``start``; ``None`` when a page shows that the API ignores ``sort``."""
        notes = self.notes
        walk = KeysetWalk(
            start,
            before=self.before,
            page_size=notes.served,
            microseconds=notes.microseconds,
            gte_exclusive=notes.gte_exclusive,
            settled_before=notes.clock.now() - LATE_COMMITS if notes.clock.believed_once else None,
        )
        found: dict[tuple[datetime, str], Change] = {}
        while (request := walk.next_request()) is not None:
            if self.requests >= max_pages and walk.at_rest:
                return found, False
            try:
                fresh = walk.read(*await self.send(request))
            except UnsortedListing:
                notes.unsorted = True
                notes.say(
                    "unsorted",
                    "Octanist's GET /leads ignored sort=updatedAt:asc; this feed now reads every change "
                    "window whole, page by page from a fixed lower bound, and orders it itself (more "
                    "requests per poll, no lead skipped).",
                )
                return None
            finally:
                self.learn(walk)
            for change in fresh:
                found.setdefault(change.key, change)
        return found, True

    def learn(self, walk: KeysetWalk) -> None:
        """Keep what a walk learnt about the server for the feed's later polls (said once)."""
        notes = self.notes
        notes.microseconds = notes.microseconds or walk.microseconds
        notes.served = min(notes.served, walk.served)
        if walk.gte_exclusive and not notes.gte_exclusive:
            notes.gte_exclusive = True
            notes.say(
                "gte_exclusive",
                "Octanist's GET /leads read updatedAt[gte] as [gt] (the leads at a listing's lower "
                "bound were missing from it); this feed now asks every lower bound one step earlier, "
                "so no lead at a bound is skipped.",
            )

    async def numbered(self, read: NumberedRead) -> dict[tuple[datetime, str], Change]:
        """Drive a page-numbered read to its end; every change it kept."""
        while (request := read.next_request()) is not None:
            read.read(*await self.send(request))
        return read.found

    async def window(self, start: Cursor) -> dict[tuple[datetime, str], Change]:
        """Every change after ``start``, read whole (the API does not sort, so nothing else is safe)."""
        notes = self.notes
        lower = start.at - step(start.at, notes.microseconds) if notes.gte_exclusive else start.at
        filters: dict[str, Any] = {"updated_gte": lower}
        if self.before is not None:
            filters["updated_lt"] = self.before
        keep = lambda change: start.admits(change.at, change.lead_id)  # noqa: E731 - a predicate
        return await self.numbered(NumberedRead(filters, keep, microseconds=notes.microseconds))


async def ids_in_millisecond(hook: OctanistAsyncHook, start: datetime, notes: FeedNotes) -> frozenset[str]:
    """
    The ids ``GET /leads`` lists with an ``updatedAt`` in the millisecond from ``start``.

    Asked from one millisecond earlier, so a server that reads ``[gte]`` as ``[gt]`` lists it too;
    read page by page as the feed reads one instant (repeating pages raise
    ``RepeatingPagesError``, and no read goes past ``MAX_PAGES`` pages, both of ``_keyset.walk``).
    """
    end = start + timedelta(milliseconds=1)
    window = {"updated_gte": start - timedelta(milliseconds=1), "updated_lt": end}
    read = NumberedRead(window, lambda change: start <= change.at < end)
    return frozenset(lead_id for _, lead_id in await _Walk(hook, notes, None, None).numbered(read))
