"""
Reading ``GET /leads`` in ``updatedAt`` order without losing a lead, sans I/O: which page to ask for
next and what each answer means. The change feed drives it with the async hook, the leads export
with the sync hook; neither writes a walk of its own.

Page numbers count positions in a listing that moves while it is read: a lead edited out of the
filters shifts every lead after it one place up, and one of them lands on no page. A keyset walk
(:class:`KeysetWalk`) asks instead for ``updatedAt >= bound`` sorted ascending, always page 1, and
moves the bound to the newest ``updatedAt`` it has read, remembering the ids read at that instant
(a :class:`Cursor`). A lead edited meanwhile moves past the bound and is met again; a lead nobody
touches keeps its place and is never skipped. When a whole page shares one instant, that instant
is read on its own by page number (:class:`NumberedRead`), and the walk goes on from the next
instant the server can print.

What a server may get wrong, and what the walk does about it:

- a bound finer than a millisecond is a stamp (or clock) the server wrote in microseconds: it is
  asked exactly (``PageRequest.exact_time``), never rounded past the leads of the rest of that
  millisecond;
- a server that reads ``[gte]`` as ``[gt]`` drops the leads at the bound: when none of those known
  at the bound comes back, the same request is made from one step earlier, and a lead at the
  bound there teaches the walk to ask every lower bound one step earlier (``gte_exclusive``);
- a page out of ``updatedAt`` order means the API ignores ``sort``: :class:`UnsortedListing`;
- a page-numbered read whose page holds only leads of its earlier pages means the API ignores
  ``page``: :class:`RepeatingPagesError`; no read goes past :data:`MAX_PAGES` pages;
- a page-numbered read is read again (up to :data:`REREADS` passes) while its pages disagree on
  ``total`` or it found fewer leads than ``total``: a lead edited meanwhile shifted the others.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from airflow_provider_octanist._keyset.cursor import Change, Cursor
from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.exceptions import OctanistResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

SORT = "updatedAt:asc"
"""The order every walk asks for."""

REREADS = 3
"""Passes of a page-numbered read while the listing moved under it."""

MAX_PAGES = 1_000
"""Pages one page-numbered read may take (100,000 leads) before it stops with an error."""


class Page(Protocol):
    """What a walk reads of one answered page of ``GET /leads`` (the hook's pages have these fields)."""

    @property
    def items(self) -> Sequence[Any]: ...
    @property
    def malformed(self) -> Sequence[str]: ...
    @property
    def has_more(self) -> bool: ...
    @property
    def total(self) -> int | None: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def server_time(self) -> datetime | None: ...


class UnsortedListing(OctanistResponseError):  # noqa: N818 - an OctanistError, named for what it says
    """``GET /leads`` answered a page out of ``updatedAt`` order: the API ignores ``sort``."""


class RepeatingPagesError(OctanistResponseError):
    """A page-numbered read came back with only leads of its earlier pages: the API ignores ``page``."""


class PageRequest(NamedTuple):
    """One ``GET /leads`` request of a walk: its page, its time filters, and their precision."""

    number: int
    filters: dict[str, Any]
    """``updated_gte`` / ``updated_lt`` as datetimes."""
    exact_time: bool
    """Send the time filters with their microseconds (see the module)."""


def walkable(filters: Mapping[str, Any]) -> bool:
    """Whether lead ``filters`` suit a keyset walk: no other sort, no raw ``updatedAt`` bound."""
    from airflow_provider_octanist._lead_vocabulary import normalize_sort

    sort = filters.get("sort")
    raw = filters.get("filters") or {}
    return (sort is None or normalize_sort(sort) == SORT) and not any(
        str(key).startswith("updatedAt") for key in raw
    )


def prints_microseconds(text: str) -> bool:
    """Whether a timestamp as the server wrote it has more than three fractional digits."""
    _, dot, fraction = text.rpartition(".")
    return bool(dot) and len(fraction) - len(fraction.lstrip("0123456789")) > 3


def step(instant: datetime, microseconds: bool) -> timedelta:
    """The smallest step a server can print after ``instant``: a millisecond, or a microsecond."""
    if microseconds or instant.microsecond % 1000:
        return timedelta(microseconds=1)
    return timedelta(milliseconds=1)


def _request(number: int, filters: dict[str, Any], microseconds: bool) -> PageRequest:
    exact = microseconds or any(
        isinstance(value, datetime) and value.microsecond % 1000 for value in filters.values()
    )
    return PageRequest(number, filters, exact)


def _unplaced(page: Page, changes: list[Change]) -> int:
    """Leads of ``page`` that could not be placed (malformed, or no readable ``updatedAt``)."""
    return len(page.items) + len(page.malformed) - len(changes)


class NumberedRead:
    """
    Every change a filter matches, by page number until ``hasMore`` is false, deduplicated by id.

    A pass is read again (up to :data:`REREADS` passes, keeping what every pass found) while its
    pages disagree on ``total`` or it found fewer leads than ``total``: a lead edited while the
    pages are read shifts the leads after it by one page, so one of them can be on no page.

    :param filters: the time filters of every request.
    :param keep: which changes count (the others still count as leads of their pass).
    :param microseconds: the server prints ``updatedAt`` with microseconds.
    """

    def __init__(
        self, filters: dict[str, Any], keep: Callable[[Change], bool], *, microseconds: bool = False
    ) -> None:
        self.filters = filters
        self.keep = keep
        self.microseconds = microseconds
        self.found: dict[tuple[datetime, str], Change] = {}
        self.done = False
        self._number = 1
        self._passes = 1
        self._ids: set[str] = set()
        self._held = 0
        self._totals: set[int | None] = set()

    def next_request(self) -> PageRequest | None:
        return None if self.done else _request(self._number, self.filters, self.microseconds)

    def read(self, page: Page, changes: list[Change]) -> list[Change]:
        """Read the answer to :meth:`next_request`; return its kept changes not found before."""
        number = self._number
        fresh_ids = [c for c in changes if c.lead_id not in self._ids]
        if number > 1 and changes and not fresh_ids:
            raise RepeatingPagesError(
                f"Octanist returned page {number} of GET /leads with only leads of earlier pages "
                "while claiming hasMore; the listing was stopped",
                request_id=page.request_id,
                hint="The API's paging may have changed; please report it with the request id.",
            )
        self._ids.update(c.lead_id for c in changes)
        self._held += _unplaced(page, changes)
        new = [c for c in changes if self.keep(c) and c.key not in self.found]
        self.found.update((c.key, c) for c in new)
        self._totals.add(page.total)
        if page.has_more and page.items:
            if number >= MAX_PAGES:
                raise OctanistResponseError(
                    f"Listing lead changes stopped after {number} pages of GET /leads while Octanist "
                    "still claimed hasMore",
                    request_id=page.request_id,
                    hint="Too many leads in one window to read by page number; please report it.",
                )
            self._number += 1
            return new
        total = page.total
        agreed = len(self._totals) == 1 and (total is None or len(self._ids) + self._held >= total)
        if agreed or self._passes >= REREADS:
            self.done = True
        else:
            self._passes += 1
            self._number, self._ids, self._held, self._totals = 1, set(), 0, set()
        return new


class KeysetWalk:
    """
    The state of one keyset walk: ask :meth:`next_request`, send it, give the answer to :meth:`read`.

    :param start: read the changes after this position; ``None`` reads from the first lead.
    :param before: only changes strictly before this instant (the walk's own ``updatedAt[lt]``).
    :param page_size: the leads asked for per page.
    :param microseconds: the server is known to print ``updatedAt`` with microseconds.
    :param gte_exclusive: the server is known to read ``[gte]`` as ``[gt]``.
    :param settled_before: instants before this one (by the server's clock) take no more leads:
        a start whose instant is older and already holds a page of ids is not read again.
    """

    def __init__(
        self,
        start: Cursor | None = None,
        *,
        before: datetime | None = None,
        page_size: int = 100,
        microseconds: bool = False,
        gte_exclusive: bool = False,
        settled_before: datetime | None = None,
    ) -> None:
        self.bound = start
        self.settled_before = settled_before
        """Every change up to here has been read (``None``: nothing yet, no lower bound)."""
        self.before = before
        self.served = page_size
        """Leads on a full page as the server serves them (it may serve fewer than asked)."""
        self.microseconds = microseconds
        self.gte_exclusive = gte_exclusive
        self.done = False
        self._whole: datetime | None = None  # the instant read whole, if any
        self._after = False  # the last keyset request asked strictly after the bound's instant
        self._started = False  # a request was made: the start's instant is never taken as complete
        self._instant: _Instant | None = None
        self._doubted: tuple[Page, list[Change]] | None = None  # an answer that may have read gte as gt

    @property
    def at_rest(self) -> bool:
        """Between two keyset pages: no instant read and no second look under way."""
        return self._instant is None and self._doubted is None

    def next_request(self) -> PageRequest | None:
        """The next request, or ``None`` once the walk is done."""
        if self.done:
            return None
        if self._instant is not None:
            return self._instant.next_request()
        filters: dict[str, Any] = {}
        bound = self.bound
        if bound is not None:
            if self._doubted is not None:  # the same request from one step earlier
                filters["updated_gte"] = bound.at - step(bound.at, self.microseconds)
            else:
                # "Strictly after" is asked as "from the next instant the server can print": a
                # server that stores microseconds but prints milliseconds answers [gt]=T.123 with
                # the leads of T.123456 forever, while [gte]=T.124 means what was asked anywhere.
                # A walk's first request asks from the start's instant itself, however many leads
                # it knows there, while a lead stamped with it may still be committed (a second
                # commit in the same millisecond after the last poll); an older one is settled.
                crowded = bound.at == self._whole or len(bound.ids) >= self.served
                settled = self.settled_before is not None and bound.at < self.settled_before
                self._after = crowded and (self._started or settled)
                at = bound.at + step(bound.at, self.microseconds) if self._after else bound.at
                filters["updated_gte"] = self.at_or_after(at)
        if self.before is not None:
            filters["updated_lt"] = self.before
        self._started = True
        return _request(1, filters, self.microseconds)

    def at_or_after(self, instant: datetime) -> datetime:
        """The ``updatedAt[gte]`` bound that selects ``instant`` and later on this server."""
        return instant - step(instant, self.microseconds) if self.gte_exclusive else instant

    def read(self, page: Page, changes: list[Change]) -> list[Change]:
        """
        Read the answer to :meth:`next_request`; return its changes not read before, in order.

        :param page: the answer.
        :param changes: its leads, positioned (see :func:`~.cursor.positioned`).
        :raises UnsortedListing: when the page is out of ``updatedAt`` order.
        :raises OctanistResponseError: when the listing makes no progress or repeats itself.
        """
        if not self.microseconds and any(prints_microseconds(str(c.lead.get("updatedAt"))) for c in changes):
            self.microseconds = True
        if self._instant is not None:
            return self._read_instant(self._instant, page, changes)
        bound = self.bound
        if self._doubted is not None:
            first, self._doubted = self._doubted, None
            if bound is not None and any(c.at == bound.at for c in changes):
                self.gte_exclusive = True  # the second look shows what the first one lost
            else:
                page, changes = first
        elif bound is not None and self._doubts(bound, changes):
            self._doubted = (page, changes)
            return []
        return self._take(page, changes)

    def _doubts(self, bound: Cursor, changes: list[Change]) -> bool:
        """Whether an answer from the bound's instant lost every lead known there ([gte] read as [gt]?)."""
        return (
            not self._after
            and not self.gte_exclusive
            and bool(bound.ids)
            and not any(c.at == bound.at for c in changes)
        )

    def _take(self, page: Page, changes: list[Change]) -> list[Change]:
        if any(changes[i].at < changes[i - 1].at for i in range(1, len(changes))):
            raise UnsortedListing(
                f"Octanist's GET /leads ignored sort={SORT} (a page is out of updatedAt order)",
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
                "Listing lead changes stopped: GET /leads returned a full page without one readable "
                "lead while claiming more",
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
            self._instant = _Instant(self, moved, bound)
        else:
            _check_progress(bound, moved, page.request_id, moved_on=False)
        return fresh

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
    """One instant read whole by page number (from one step earlier once ``[gte]`` reads as ``[gt]``)."""

    def __init__(self, walk: KeysetWalk, bound: Cursor, previous: Cursor | None) -> None:
        self.walk = walk
        self.bound = bound
        self.previous = previous
        self.finished = False
        self.ids_at: set[str] = set()
        """Every lead read at the instant."""
        self._second_look = False
        self._read = self._numbered(earlier=False)

    def _numbered(self, *, earlier: bool) -> NumberedRead:
        walk, at = self.walk, self.bound.at
        upper = at + step(at, walk.microseconds)
        if walk.before is not None:
            upper = min(upper, walk.before)
        lower = at - step(at, walk.microseconds) if earlier else walk.at_or_after(at)
        return NumberedRead(
            {"updated_gte": lower, "updated_lt": upper}, lambda c: c.at == at, microseconds=walk.microseconds
        )

    def next_request(self) -> PageRequest | None:
        return self._read.next_request()

    def read(self, page: Page, changes: list[Change]) -> list[Change]:
        new = self._read.read(page, changes)
        fresh = [c for c in new if c.lead_id not in self.bound.ids and c.lead_id not in self.ids_at]
        self.ids_at.update(c.lead_id for c in new)
        if not self._read.done:
            return fresh
        if not self.ids_at and not self.walk.gte_exclusive and not self._second_look:
            # Not one of the leads just seen at this instant came back: [gte] read as [gt]?
            self._second_look = True
            self._read = self._numbered(earlier=True)
            return fresh
        if self._second_look and self.ids_at:
            self.walk.gte_exclusive = True
        self.finished = True
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
            "Listing lead changes made no progress: GET /leads returned a full page of leads already "
            f"handled at {cursor_timestamp(bound.at)} while claiming more",
            request_id=request_id,
            hint="The API's filters or sort may have changed; please report it with the request id.",
        )
