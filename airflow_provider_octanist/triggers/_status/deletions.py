"""
Noticing that a lead a status trigger waits on was deleted, with one small request per poll.

The API has no DELETE endpoint and no webhook: a lead deleted in Octanist's web app just leaves
the listings, so the change feed (which lists what changed) never shows it. What does show it is
a count that nothing else can lower: ``total`` of ``GET /leads?createdAt[lt]=B&limit=1`` for a
bound ``B`` in the server's past. No lead can be created before a moment already past, so that
count goes down only when a lead created before ``B`` is deleted.

**The chain of bounds, and why no deletion falls between two of them.** A bound ``B`` gets a
*baseline* (its count, and the moment the answer arrived here); each later poll counts ``B``
again and compares. When a joining lead was created after ``B``, the feed takes a new bound
``B'`` from the server's clock: first the baseline of ``B'``, then, in the same poll, the last
count of ``B``, and only then ``B'`` replaces ``B``. A lead created before ``B`` and deleted
before the baseline of ``B'`` lowers the last count of ``B``; one deleted after it lowers a later
count of ``B'``. The two windows overlap, so every moment after the first baseline is watched.
A failed or refused count leaves the bound and its baseline as they were: the next count of the
same bound simply covers a longer window.

**Which subscribers a count covers.** A subscription is *covered* once the count is known to
include its lead: the lead was created before the bound and existed when the baseline was read.
The trigger's own read proves the lead existed when it was read, so a baseline that arrived
before that read began covers it at once (a trigger joining a feed that already runs). A
baseline read after it proves nothing (the lead may have gone in between), so the subscriber is
asked to read its lead once more (one ``GET /leads/{id}``), after which it is covered.

**When the count changes**, every subscriber whose lead could be the one (created before the
bound, or of unknown creation time) is asked to read its lead once: a deleted lead answers 404
and its trigger fires ``not_found``; the others go back to waiting. A count that went *up* (a lead
imported with an old ``createdAt``, or stamped before the bound but stored late) wakes them too,
as it could hide a deletion in the same window. Bounds lie ``CLOCK_MARGIN`` before the server's
clock, so a lead stamped before a bound has been stored before its baseline is read.

Where the API refuses the count (a 4xx, an answer without ``meta.pagination``), the feed says so
once and goes on without it; a transient failure skips one count.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_octanist._backoff import is_transient
from airflow_provider_octanist._timestamps import cursor_timestamp, parse_timestamp, whole_millisecond
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime, timedelta

    from airflow_provider_octanist._keyset.cursor import RawLead
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._feed.changes import FeedNotes

_SAY_AGAIN_EVERY = 3600.0
"""Seconds between two warnings of one feed about counts that failed."""


def created_at(lead: RawLead) -> datetime | None:
    """The lead's ``createdAt``, or ``None`` when it has none that can be read."""
    return parse_timestamp(lead.get("createdAt"))


class Waiter(Protocol):
    """
    What the deletion check needs of one waiting trigger (the status feed's ``Subscription``).

    ``ask_to_check`` sets ``check``, which the trigger takes as it begins to read its lead; after
    that read ``covered`` (it succeeded) or ``doubt`` (it failed: ask again at the next poll) is set.
    """

    lead_id: str
    created_at: datetime | None
    read_from: float
    check: bool
    covered: bool
    doubt: bool

    def set_covered(self, covered: bool) -> None:
        """Whether this count is known to include the lead."""

    def ask_to_check(self) -> None:
        """Set ``check`` and wake the trigger to read its lead once with ``GET /leads/{id}``."""


class DeletionCheck:
    """
    The count of one status feed (see the module docstring): its bound, baseline and state.

    :param notes: where the feed says things once.
    :param margin: how far before the server's clock a new bound lies.
    :param clock: monotonic seconds, the clock of the subscribers' ``read_from``.
    """

    def __init__(self, notes: FeedNotes, margin: timedelta, clock: Any = time.monotonic) -> None:
        self.notes = notes
        self.margin = margin
        self._clock = clock
        self.bound: datetime | None = None
        self.total: int | None = None
        self.answered_at = 0.0
        """When the baseline of ``bound`` arrived (``clock`` seconds)."""
        self.off: str | None = None
        """Why the feed checks for deletions no more (the API refused the count)."""

    def join(self, waiter: Waiter) -> None:
        """Cover ``waiter`` at once when the current baseline arrived before its own read began."""
        waiter.set_covered(self._covers(waiter) and self.answered_at <= waiter.read_from)

    async def after_poll(
        self, hook: OctanistAsyncHook, server_time: datetime | None, waiters: Iterable[Waiter]
    ) -> None:
        """
        Count once (twice when the bound moves) and ask the subscribers that need it to read their lead.

        :param hook: the feed's hook.
        :param server_time: the server's clock from the poll's answers, if believable.
        :param waiters: every subscriber of the feed.
        """
        if self.off is not None:
            return
        waiting = list(waiters)
        try:
            await self._count_and_move(hook, server_time, waiting)
        except OctanistAuthError:
            return  # the feed's own poll reports a rejected key
        except Exception as exc:
            if isinstance(exc, OctanistError) and not is_transient(exc):
                self._stop(f"GET /leads with a createdAt[lt] filter was refused: {exc}")
                return
            self.notes.say(
                "deletion count failed",
                "The shared lead-status feed could not count leads to notice deleted ones (%s); it "
                "counts again at the next poll. Said again every hour while it lasts.",
                exc,
                every=_SAY_AGAIN_EVERY,
            )
            return
        for waiter in waiting:
            unverified = not waiter.covered and self._covers(waiter)
            if not waiter.check and (waiter.doubt or unverified):
                waiter.ask_to_check()

    async def _count_and_move(
        self, hook: OctanistAsyncHook, server_time: datetime | None, waiting: list[Waiter]
    ) -> None:
        fresh: tuple[datetime, int, float] | None = None
        wanted = self._next_bound(server_time, waiting)
        if wanted is not None:
            total = await self._count(hook, wanted)
            if total is None:
                return
            fresh = wanted, total, self._clock()
        if self.bound is not None:
            total = await self._count(hook, self.bound)
            if total is None:
                return
            if total != self.total:
                bound, self.total = self.bound, total
                for waiter in waiting:
                    if waiter.created_at is None or waiter.created_at < bound:
                        waiter.ask_to_check()
        if fresh is not None:
            self.bound, self.total, self.answered_at = fresh

    def _next_bound(self, server_time: datetime | None, waiting: list[Waiter]) -> datetime | None:
        """A new bound when a waiting lead was created after the current one (or there is none yet)."""
        if server_time is None:
            return None
        candidate = whole_millisecond(server_time - self.margin)
        if self.bound is None:
            return candidate
        bound = self.bound
        newer = any(w.created_at is not None and bound <= w.created_at < candidate for w in waiting)
        return candidate if newer else None

    def _covers(self, waiter: Waiter) -> bool:
        return self.bound is not None and waiter.created_at is not None and waiter.created_at < self.bound

    async def _count(self, hook: OctanistAsyncHook, bound: datetime) -> int | None:
        """The number of leads created before ``bound``; ``None`` (and the check off) without one."""
        page = await hook.list_leads_page(1, skip_malformed=True, page_size=1, fields="id", created_lt=bound)
        if page.limit is None or page.total is None:
            # A legacy or pagination-less answer's length is not a count of the filter's leads.
            self._stop(
                f"GET /leads?createdAt[lt]={cursor_timestamp(bound)} answered without meta.pagination.total"
            )
            return None
        return page.total

    def _stop(self, reason: str) -> None:
        self.off = reason
        self.notes.say(
            "deletion check off",
            "The shared lead-status feed cannot notice deleted leads (%s); a trigger whose lead is "
            "deleted learns it at its end time, when it reads its lead once more.",
            reason,
        )
