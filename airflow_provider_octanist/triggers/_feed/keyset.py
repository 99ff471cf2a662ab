"""
Keyset paging over ``GET /leads`` in ``updatedAt`` order, sans I/O: which page to ask for next and
what each answer means. The sync export drives it with the sync hook; any async walk can drive it
the same way.

Page numbers count positions in a listing that moves while it is read: a lead edited out of the
filters shifts every lead after it one place up, and one of them lands on no page. A keyset walk
asks instead for ``updatedAt >= bound`` sorted ascending, always page 1, and moves the bound to the
newest ``updatedAt`` it has read, remembering the ids read at that instant (a :class:`Cursor`).
A lead edited meanwhile moves past the bound and is met again; a lead nobody touches keeps its
place and is never skipped. When a whole page shares one instant, that instant is read on its own,
by page number inside ``[instant, next instant)``, again while a pass disagrees with ``total``, and
the walk goes on from the next instant the server can print.

A page out of ``updatedAt`` order means the API ignored ``sort``: :class:`UnsortedListing` is
raised, for the driver to fail loudly or to read another way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.exceptions import OctanistResponseError
from airflow_provider_octanist.triggers._feed.cursor import Change, Cursor

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_octanist._api import Page

SORT = "updatedAt:asc"
"""The order a keyset walk asks for."""

REREADS = 3
"""Passes over one instant read by page number while the instant moved under the pass."""

MAX_INSTANT_PAGES = 1_000
"""Pages one instant may take (100,000 leads with one ``updatedAt``) before the walk stops."""


class UnsortedListing(OctanistResponseError):  # noqa: N818 - an OctanistError, named for what it says
    """``GET /leads`` answered a page out of ``updatedAt`` order: the API ignores ``sort``."""


def walkable(filters: Mapping[str, Any]) -> bool:
    """Whether lead ``filters`` suit a keyset walk: no other sort, no raw ``updatedAt`` bound."""
    from airflow_provider_octanist._api import normalize_sort

    sort = filters.get("sort")
    raw = filters.get("filters") or {}
    return (sort is None or normalize_sort(sort) == SORT) and not any(
        str(key).startswith("updatedAt") for key in raw
    )


def prints_microseconds(text: str) -> bool:
    """Whether a timestamp as the server wrote it has more than three fractional digits."""
    fraction = text.rpartition(".")[2]
    return len(fraction) - len(fraction.lstrip("0123456789")) > 3


class KeysetWalk:
    """
    The state of one keyset walk: ask :meth:`next_request`, send it, give the answer to :meth:`read`.

    :param start: read the changes after this position; ``None`` reads from the first lead.
    :param before: only changes strictly before this instant (the walk's own ``updatedAt[lt]``).
    :param page_size: the leads asked for per page.
    :param microseconds: the server is known to print ``updatedAt`` with microseconds.
    """

    def __init__(
        self,
        start: Cursor | None = None,
        *,
        before: datetime | None = None,
        page_size: int = 100,
        microseconds: bool = False,
    ) -> None:
        self.bound = start
        """Every change up to here has been read (``None``: nothing yet, no lower bound)."""
        self.before = before
        self.served = page_size
        """Leads on a full page as the server serves them (it may serve fewer than asked)."""
        self.microseconds = microseconds
        self.done = False
        self._whole: datetime | None = None  # the instant read whole, if any
        self._after = False  # the last keyset request asked strictly after the bound's instant
        self._instant: _Instant | None = None

    def next_request(self) -> tuple[int, dict[str, Any]] | None:
        """The page number and time filters (``updated_gte``, ``updated_lt``) of the next request."""
        if self.done:
            return None
        if self._instant is not None:
            return self._instant.number, self._instant.filters
        filters: dict[str, Any] = {}
        if self.bound is not None:
            # "Strictly after" is asked as "from the next instant the server can print": a server
            # that stores microseconds but prints milliseconds answers [gt]=T.123 with the leads of
            # T.123456 forever, while [gte]=T.124 means what was asked on every server.
            self._after = self.bound.at == self._whole or len(self.bound.ids) >= self.served
            at = self.bound.at
            filters["updated_gte"] = at + self.step(at) if self._after else at
        if self.before is not None:
            filters["updated_lt"] = self.before
        return 1, filters

    def read(self, page: Page, changes: list[Change]) -> list[Change]:
        """
        Read the answer to :meth:`next_request`; return its changes not read before, in order.

        :param page: the answer.
        :param changes: its leads, positioned (see :func:`~.cursor.positioned`).
        :raises UnsortedListing: when the page is out of ``updatedAt`` order.
        :raises OctanistResponseError: when the listing makes no progress or repeats itself.
        """
        for change in changes:
            if not self.microseconds and prints_microseconds(str(change.lead.get("updatedAt", ""))):
                self.microseconds = True
        if self._instant is not None:
            return self._read_instant(self._instant, page, changes)
        if any(changes[i].at < changes[i - 1].at for i in range(1, len(changes))):
            raise UnsortedListing(
                f"Octanist's GET /leads ignored sort={SORT} (page 1 is out of updatedAt order)",
                request_id=page.request_id,
                hint="The listing was stopped rather than risk leaving leads out; please report it.",
            )
        bound = self.bound
        fresh = [c for c in changes if bound is None or bound.admits(c.at, c.lead_id)]
        if self._ends(page):
            self.done = True
            return fresh
        if not changes:
            # A full page with nothing to place the bound by: stopping would hide every lead after it.
            raise OctanistResponseError(
                "Listing leads stopped: GET /leads returned a full page without one readable lead "
                "while claiming more",
                request_id=page.request_id,
                hint="Every lead on the page was malformed; please report it with the request id.",
            )
        newest = max(change.at for change in changes)
        at_newest = frozenset(c.lead_id for c in changes if c.at == newest)
        if bound is None or newest > bound.at:
            moved = Cursor(newest, at_newest)
        else:  # a page that stayed at the bound's instant (newer leads than it would have moved it)
            moved = Cursor(bound.at, bound.ids | at_newest)
        self.bound = moved
        if len(moved.ids) >= self.served and moved.at != self._whole:
            # A whole page at one instant: read that instant on its own, by page number.
            step = self.step(moved.at)
            upper = moved.at + step if self.before is None else min(moved.at + step, self.before)
            self._instant = _Instant(moved, {"updated_gte": moved.at, "updated_lt": upper}, bound)
        else:
            _check_progress(bound, moved, page.request_id, moved_on=False)
        return fresh

    def step(self, instant: datetime) -> timedelta:
        """The smallest step the server can print after ``instant``: a millisecond, or a microsecond."""
        if self.microseconds or instant.microsecond % 1000:
            return timedelta(microseconds=1)
        return timedelta(milliseconds=1)

    def _ends(self, page: Page) -> bool:
        """
        Whether ``page`` is the last of its listing, by what the answer says.

        ``hasMore`` false ends it. A page shorter than the ``limit`` the server says it used, whose
        ``total`` (if given) it holds entirely, ends it too (a server that claims more forever). A
        page shorter than asked is otherwise the server's page size, remembered as a full page.
        """
        held = len(page.items) + len(page.malformed)
        if not page.has_more:
            return True
        if held < (page.limit or self.served) and (page.total is None or page.total <= held):
            return True
        if held:
            self.served = min(self.served, held)
        return False

    def _read_instant(self, instant: _Instant, page: Page, changes: list[Change]) -> list[Change]:
        fresh = instant.read(page, changes)
        if instant.finished:
            self._instant = None
            self.bound = Cursor(instant.bound.at, instant.bound.ids | instant.ids_at)
            self._whole = instant.bound.at
            _check_progress(instant.previous, self.bound, page.request_id, moved_on=not self._after)
        return fresh


class _Instant:
    """One instant read whole by page number: passes until one agrees with its ``total``."""

    def __init__(self, bound: Cursor, filters: dict[str, Any], previous: Cursor | None) -> None:
        self.bound = bound
        self.filters = filters
        self.previous = previous
        self.number = 1
        self.passes = 1
        self.finished = False
        self.ids_at: set[str] = set()
        """Every lead read at the instant, over every pass."""
        self._pass_ids: set[str] = set()
        self._totals: set[int | None] = set()

    def read(self, page: Page, changes: list[Change]) -> list[Change]:
        at = self.bound.at
        if self.number > 1 and changes and all(c.lead_id in self._pass_ids for c in changes):
            raise OctanistResponseError(
                f"Octanist returned page {self.number} of GET /leads with only leads of earlier pages "
                "while claiming hasMore; the listing was stopped",
                request_id=page.request_id,
                hint="The API's paging may have changed; please report it with the request id.",
            )
        self._pass_ids.update(c.lead_id for c in changes)
        fresh = [
            c
            for c in changes
            if c.at == at and c.lead_id not in self.bound.ids and c.lead_id not in self.ids_at
        ]
        self.ids_at.update(c.lead_id for c in changes if c.at == at)
        self._totals.add(page.total)
        if page.has_more and page.items:
            if self.number >= MAX_INSTANT_PAGES:
                raise OctanistResponseError(
                    f"Listing leads stopped after {self.number} pages of leads updated at "
                    f"{cursor_timestamp(at)} while Octanist still claimed hasMore",
                    request_id=page.request_id,
                    hint="Too many leads share one instant; please report it with the request id.",
                )
            self.number += 1
            return fresh
        # A lead edited while the pages are read shifts the leads after it by one page, so one of
        # them can be on no page of the pass: read it again while the pass disagrees with total.
        agreed = len(self._totals) == 1 and (page.total is None or len(self._pass_ids) >= page.total)
        if agreed or self.passes >= REREADS:
            self.finished = True
        else:
            self.passes += 1
            self.number = 1
            self._pass_ids, self._totals = set(), set()
        return fresh


def _check_progress(
    previous: Cursor | None, bound: Cursor, request_id: str | None, *, moved_on: bool
) -> None:
    """
    Stop a listing whose bound did not move: the API keeps answering with leads already read.

    ``moved_on``: the bound's instant was just read whole, so the next request asks past it.
    """
    if previous is None:
        return
    if (bound == previous and not moved_on) or not bound.covers(previous):
        raise OctanistResponseError(
            "Listing leads made no progress: GET /leads returned a full page of leads already read "
            f"at {cursor_timestamp(bound.at)} while claiming more",
            request_id=request_id,
            hint="The API's filters or sort may have changed; please report it with the request id.",
        )
