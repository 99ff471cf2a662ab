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

from airflow_provider_octanist._api.redact import MAX_SERVER_WORD, cap, scrub
from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.exceptions import OctanistResponseError
from airflow_provider_octanist.triggers._feed.cursor import Change, Cursor, positioned
from airflow_provider_octanist.triggers._feed.server_clock import ServerClock

if TYPE_CHECKING:
    from airflow_provider_octanist._api import Page
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._feed.health import FeedHealth

log = logging.getLogger(__name__)


PAGE_SIZE = 100
"""Leads per list request: the API's maximum, so a poll costs as few requests as possible."""


MAX_PAGES_PER_POLL = 1_000
"""A poll reads at most this many pages (100,000 changes) before reporting what it found."""


FUTURE_TOLERANCE = timedelta(minutes=1)
"""How far past the server's clock (``meta.timestamp``) an ``updatedAt`` may be and still move a cursor."""


_REREADS = 3
"""Times a page-numbered read is repeated while the listing moved under it (see ``_Walk.numbered``)."""

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
        self.served = PAGE_SIZE
        """Leads on a full page as the server serves them (it may serve fewer than asked)."""
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

    async def page(self, number: int, **filters: Any) -> tuple[Page, list[Change]]:
        """One page with its placeable changes; malformed leads are counted and logged once each."""
        if self.status is not None:
            filters["status"] = self.status
        # A bound finer than a millisecond is a stamp (or clock) the server wrote in microseconds:
        # rounded to the millisecond it would pass the leads of the rest of that millisecond.
        exact = self.notes.microseconds or any(
            isinstance(value, datetime) and value.microsecond % 1000 for value in filters.values()
        )
        page = await self.hook.list_leads_page(
            number,
            skip_malformed=True,
            sort="updatedAt:asc",
            page_size=PAGE_SIZE,
            exact_time=exact,
            **filters,
        )
        self.requests += 1
        server_time = self.notes.server_time(page.server_time)
        if server_time is not None:
            self.server_now = max(self.server_now or server_time, server_time)
        self.first_answer = self.first_answer or server_time or self.notes.clock.now()
        changes, rejected = positioned(page.items, "GET /leads")
        # A server that prints ".123000" steps by microseconds, not to ".124".
        if not self.notes.microseconds and any(_prints_microseconds(c.lead["updatedAt"]) for c in changes):
            self.notes.microseconds = True
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

    def window_filters(self, lower: datetime, *, strictly_after: bool = False) -> dict[str, Any]:
        # "Strictly after" is asked as "from the next instant the server can print": a server that
        # stores microseconds but prints milliseconds answers [gt]=T.123 with the leads of
        # T.123456 forever, while [gte]=T.124 means what was asked on every server.
        filters: dict[str, Any] = {
            "updated_gte": self.at_or_after(lower + self.step(lower) if strictly_after else lower)
        }
        if self.before is not None:
            filters["updated_lt"] = self.before
        return filters

    def at_or_after(self, instant: datetime) -> datetime:
        """The ``updatedAt[gte]`` bound that selects ``instant`` and later on this server."""
        return instant - self.step(instant) if self.notes.gte_exclusive else instant

    def in_order(self, changes: list[Change]) -> bool:
        """Whether a page is in ``updatedAt`` order; the first time one is not, the feed reads unsorted."""
        if all(changes[i].at >= changes[i - 1].at for i in range(1, len(changes))):
            return True
        self.notes.unsorted = True
        self.notes.say(
            "unsorted",
            "Octanist's GET /leads ignored sort=updatedAt:asc; this feed now reads every change "
            "window whole, page by page from a fixed lower bound, and orders it itself (more "
            "requests per poll, no lead skipped).",
        )
        return False

    def doubts_gte(self, instant: datetime, known: frozenset[str], changes: list[Change]) -> bool:
        """
        Whether an answer from ``updatedAt[gte]=instant`` may have been read as ``[gt]``.

        The leads ``known`` at ``instant`` come back unless they changed since: when none of them
        and no other lead at ``instant`` did, the server is asked again (see ``from_earlier``).
        """
        return bool(known) and not self.notes.gte_exclusive and not any(c.at == instant for c in changes)

    async def from_earlier(
        self, instant: datetime, filters: dict[str, Any]
    ) -> tuple[Page, list[Change]] | None:
        """
        The answer to ``filters`` from one step before ``instant``, if it shows ``[gte]`` read as ``[gt]``.

        A lead at ``instant`` in it, missing from the answer from ``instant`` itself, means so; every
        lower bound of this feed is then asked one step earlier (said once). ``None`` otherwise.
        """
        earlier = await self.page(1, **{**filters, "updated_gte": instant - self.step(instant)})
        if not any(c.at == instant for c in earlier[1]):
            return None
        self.notes.gte_exclusive = True
        self.notes.say(
            "gte_exclusive",
            "Octanist's GET /leads read updatedAt[gte] as [gt] (the leads at %s were missing from a "
            "listing from that instant); this feed now asks every lower bound one step earlier, so no "
            "lead at a bound is skipped.",
            cursor_timestamp(instant),
        )
        return earlier

    async def keyset(
        self, start: Cursor, max_pages: int
    ) -> tuple[dict[tuple[datetime, str], Change], bool] | None:
        """Keyset paging from ``start``; ``None`` when a page shows that the API ignores ``sort``."""
        bound = start
        found: dict[tuple[datetime, str], Change] = {}
        whole: datetime | None = None  # the instant this walk read whole, if any
        while True:
            # What comes strictly after the bound's instant, once every lead at it is known.
            after = bound.at == whole or len(bound.ids) >= self.served
            filters = self.window_filters(bound.at, strictly_after=after)
            page, changes = await self.page(1, **filters)
            if not after and self.doubts_gte(bound.at, bound.ids, changes):
                page, changes = await self.from_earlier(bound.at, filters) or (page, changes)
            if not self.in_order(changes):
                return None
            for change in changes:
                if bound.admits(change.at, change.lead_id):
                    found.setdefault(change.key, change)
            if self.ends(page):
                return found, True
            if not changes:
                # A full page with nothing to place the bound by: stopping here would hide every
                # lead after it, so say so instead.
                raise OctanistResponseError(
                    "Listing lead changes stopped: GET /leads returned a full page without one readable "
                    "lead while claiming more",
                    request_id=page.request_id,
                    hint="Every lead on the page was malformed; please report it with the request id.",
                )
            if self.requests >= max_pages:
                return found, False
            previous, bound = bound, _past_page(bound, changes)
            if len(bound.ids) >= self.served and bound.at != whole:
                # A whole page at one instant: read that instant on its own, by page number, so the
                # next request can ask for what comes strictly after it.
                for change in await self.instant(bound.at, bound.ids):
                    if previous.admits(change.at, change.lead_id):
                        found.setdefault(change.key, change)
                    bound = Cursor(bound.at, bound.ids | {change.lead_id})
                whole = bound.at
            _check_progress(previous, bound, page.request_id, moved_on=not after and whole == bound.at)

    def step(self, instant: datetime) -> timedelta:
        """The smallest step the server can print after ``instant``: a millisecond, or a microsecond."""
        if self.notes.microseconds or instant.microsecond % 1000:
            return timedelta(microseconds=1)
        return timedelta(milliseconds=1)

    def ends(self, page: Page) -> bool:
        """
        Whether ``page`` is the last of its listing, by what the answer says.

        ``hasMore`` false ends it. A page shorter than the ``limit`` the server says it used, whose
        ``total`` (if given) it holds entirely, ends it too (a server that claims more forever). A
        page shorter than asked is otherwise a server's page size, not the end: it is remembered as
        the size of a full page.
        """
        held = len(page.items) + len(page.malformed)
        if not page.has_more:
            return True
        short = held < (page.limit or PAGE_SIZE)
        if short and (page.total is None or page.total <= held):
            return True
        if held:
            self.served = min(self.served, held)
        return False

    async def numbered(self, filters: dict[str, Any], keep: Any) -> list[Change]:
        """
        Every change a filter matches, by page number until ``hasMore`` is false, deduplicated by id.

        A lead edited while the pages are read shifts the leads after it by one page, so one of them
        can be on no page of the pass. A pass is therefore read again (up to ``_REREADS`` times,
        keeping what every pass found) while its pages disagree on ``total`` or it found fewer
        distinct leads than ``total``.
        """
        seen: dict[tuple[datetime, str], Change] = {}
        for _ in range(_REREADS):
            number, total, skipped = 1, None, self.skipped
            totals: set[int | None] = set()
            ids: set[str] = set()
            while True:
                page, changes = await self.page(number, **filters)
                fresh = [c for c in changes if c.lead_id not in ids]
                if number > 1 and changes and not fresh:
                    raise RepeatingPagesError(
                        f"Octanist returned page {number} of GET /leads with only leads of earlier pages "
                        "while claiming hasMore; the listing was stopped",
                        request_id=page.request_id,
                        hint="The API's paging may have changed; please report it with the request id.",
                    )
                ids.update(c.lead_id for c in changes)
                for change in changes:
                    if keep(change):
                        seen.setdefault(change.key, change)
                total = page.total
                totals.add(total)
                if not page.has_more or not page.items:
                    break
                if number >= MAX_PAGES_PER_POLL:
                    # Unsorted, a partial read could miss any lead: better an error than silence.
                    raise OctanistResponseError(
                        f"Listing lead changes stopped after {number} pages of GET /leads while "
                        "Octanist still claimed hasMore",
                        request_id=page.request_id,
                        hint="Too many changes in one window to read unsorted; please report it.",
                    )
                number += 1
            if len(totals) == 1 and (total is None or len(ids) + self.skipped - skipped >= total):
                break
        return list(seen.values())

    async def window(self, start: Cursor) -> dict[tuple[datetime, str], Change]:
        """Every change after ``start``, read whole (the API does not sort, so nothing else is safe)."""
        changes = await self.numbered(
            self.window_filters(start.at), lambda change: start.admits(change.at, change.lead_id)
        )
        return {change.key: change for change in changes}

    async def instant(self, instant: datetime, known: frozenset[str] = frozenset()) -> list[Change]:
        """
        Every lead whose ``updatedAt`` is exactly ``instant`` (millisecond or microsecond).

        ``known``: leads seen at ``instant`` already; when none of them comes back, the server may
        read ``[gte]`` as ``[gt]`` (see ``doubts_gte``), and the instant is read again from one
        step earlier.
        """
        step = self.step(instant)
        upper = instant + step if self.before is None else min(instant + step, self.before)
        found = await self.numbered(
            {"updated_gte": self.at_or_after(instant), "updated_lt": upper},
            lambda change: change.at == instant,
        )
        if self.doubts_gte(instant, known, found) and await self.from_earlier(instant, {"updated_lt": upper}):
            return await self.instant(instant)
        return found


class RepeatingPagesError(OctanistResponseError):
    """A page-numbered listing came back with only leads of its earlier pages: the API ignores ``page``."""


async def ids_in_millisecond(hook: OctanistAsyncHook, start: datetime, notes: FeedNotes) -> frozenset[str]:
    """
    The ids ``GET /leads`` lists with an ``updatedAt`` in the millisecond from ``start``.

    Asked from one millisecond earlier, so a server that reads ``[gte]`` as ``[gt]`` lists it too;
    read page by page as the feed reads one instant (``_Walk.numbered``: repeating pages raise
    :class:`RepeatingPagesError`, and no read goes past :data:`MAX_PAGES_PER_POLL` pages).
    """
    end = start + timedelta(milliseconds=1)
    walk = _Walk(hook, notes, None, None)
    window = {"updated_gte": start - timedelta(milliseconds=1), "updated_lt": end}
    return frozenset(c.lead_id for c in await walk.numbered(window, lambda change: start <= change.at < end))


def _past_page(bound: Cursor, changes: list[Change]) -> Cursor:
    """Where a keyset walk's bound goes after a page: its newest instant, with the ids seen there."""
    newest = max(change.at for change in changes)
    if newest > bound.at:
        return Cursor(newest, frozenset(c.lead_id for c in changes if c.at == newest))
    return Cursor(bound.at, bound.ids | {c.lead_id for c in changes if c.at == bound.at})


def _prints_microseconds(text: str) -> bool:
    """Whether a timestamp as the server wrote it has more than three fractional digits."""
    fraction = text.rpartition(".")[2]
    return len(fraction) - len(fraction.lstrip("0123456789")) > 3


def _check_progress(previous: Cursor, bound: Cursor, request_id: str | None, *, moved_on: bool) -> None:
    """
    Stop a listing whose bound did not move: the API keeps answering with leads already handled.

    ``moved_on``: the bound's instant was just read whole, so the next request asks past it.
    """
    if (bound == previous and not moved_on) or not bound.covers(previous):
        raise OctanistResponseError(
            "Listing lead changes made no progress: GET /leads returned a full page of leads "
            f"already handled at {cursor_timestamp(bound.at)} while claiming more",
            request_id=request_id,
            hint="The API's filters or sort may have changed; please report it with the request id.",
        )
