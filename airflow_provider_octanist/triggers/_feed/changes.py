"""
Listing every lead changed after a cursor: keyset paging over ``GET /leads?sort=updatedAt:asc``.

After every page the lower bound moves to the newest ``updatedAt`` seen and paging restarts at
page 1, so leads changing while we page cannot make us skip one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.exceptions import OctanistResponseError
from airflow_provider_octanist.triggers._feed.cursor import Change, Cursor, positioned

if TYPE_CHECKING:
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook


PAGE_SIZE = 100
"""Leads per list request: the API's maximum, so a poll costs as few requests as possible."""


MAX_PAGES_PER_POLL = 1_000
"""A poll reads at most this many pages (100,000 changes) before reporting what it found."""


@dataclass(frozen=True)
class Changes:
    """What one poll found: the changes after ``start`` (ordered, each once) and where it ended."""

    start: Cursor
    end: Cursor
    changes: tuple[Change, ...]
    complete: bool
    """False when the poll stopped at :data:`MAX_PAGES_PER_POLL`: more changes are waiting."""


async def fetch_changes(
    hook: OctanistAsyncHook,
    start: Cursor,
    *,
    status: str | None = None,
    before: datetime | None = None,
    max_pages: int = MAX_PAGES_PER_POLL,
) -> Changes:
    """
    List every lead changed after ``start``, oldest change first, with keyset paging.

    Each request asks for ``updatedAt >= bound`` sorted ascending. After a page the bound moves to
    the newest ``updatedAt`` on it (remembering which ids at that instant were seen) and paging
    restarts at page 1, so a lead edited while we page moves *behind* the bound and is met again,
    never skipped. Only a page made entirely of one instant (at least 100 leads in one millisecond)
    is read with page numbers, inside that instant alone, until its ``total`` is reached.

    Cost: one request when nothing changed; about one per 100 changed leads otherwise (a page that
    ends inside a millisecond shares those leads with the next page).

    :param hook: the async hook to list with.
    :param start: list the changes after this position.
    :param status: only leads in this status (for seeding a watcher's memory).
    :param before: only changes strictly before this instant.
    :param max_pages: stop after this many requests and report ``complete=False``.
    """
    bound = start
    found: dict[tuple[datetime, str], Change] = {}
    requests = 0
    complete = True
    while True:
        page = await hook.list_leads_page(1, **_after(bound, status=status, before=before))
        requests += 1
        changes = positioned(page.items, "GET /leads")
        for change in changes:
            if bound.admits(change.at, change.lead_id):
                found.setdefault(change.key, change)
        if not page.has_more or len(page.items) < PAGE_SIZE or not changes:
            break
        if requests >= max_pages:
            complete = False
            break
        newest = max(change.at for change in changes)
        previous = bound
        if newest > bound.at:
            bound = Cursor(newest, frozenset(c.lead_id for c in changes if c.at == newest))
        else:
            bound = Cursor(bound.at, bound.ids | {c.lead_id for c in changes if c.at == bound.at})
        if len(bound.ids) >= PAGE_SIZE:
            # A whole page at one instant: read that millisecond on its own, by page number, so the
            # next request can ask for what comes strictly after it.
            instant, spent = await _drain_instant(hook, bound.at, status=status, before=before)
            requests += spent
            for change in instant:
                if previous.admits(change.at, change.lead_id):
                    found.setdefault(change.key, change)
            bound = Cursor(bound.at, bound.ids | {c.lead_id for c in instant})
        _check_progress(previous, bound, page.request_id)
    ordered = tuple(sorted(found.values(), key=lambda change: change.key))
    end = bound
    for change in ordered:
        end = end.past(change.at, change.lead_id)
    return Changes(start=start, end=end.furthest(start), changes=ordered, complete=complete)


def _after(bound: Cursor, *, status: str | None, before: datetime | None) -> dict[str, Any]:
    """The ``GET /leads`` filters for "changed after ``bound``", oldest first."""
    filters: dict[str, Any] = {"sort": "updatedAt:asc", "page_size": PAGE_SIZE}
    if status is not None:
        filters["status"] = status
    if before is not None:
        filters["updated_lt"] = before
    if len(bound.ids) >= PAGE_SIZE:
        # Every lead at this instant has been read (see the drain): asking for ">=" again would
        # return a first page made only of them.
        filters["updated_gt"] = bound.at
    else:
        filters["updated_gte"] = bound.at
    return filters


def _check_progress(previous: Cursor, bound: Cursor, request_id: str | None) -> None:
    """Stop a listing whose bound did not move: the API keeps answering with leads already handled."""
    if bound == previous or not bound.covers(previous):
        raise OctanistResponseError(
            "Listing lead changes made no progress: GET /leads returned a full page of leads "
            f"already handled at {cursor_timestamp(bound.at)} while claiming more",
            request_id=request_id,
            hint="The API's filters or sort may have changed; please report it with the request id.",
        )


_DRAIN_ATTEMPTS = 3


async def _drain_instant(
    hook: OctanistAsyncHook, instant: datetime, *, status: str | None, before: datetime | None
) -> tuple[list[Change], int]:
    """
    Read every lead whose ``updatedAt`` is exactly ``instant``, by page number within that millisecond.

    Page numbers are only safe while nothing moves; leads leaving the instant (edited again) move
    out of it, which can shift a page. The listing's ``total`` tells whether we missed one, and the
    whole instant is read again (a bounded number of times) until none is missing.
    """
    floor = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    upper = floor + timedelta(milliseconds=1)
    if before is not None:
        upper = min(upper, before)
    seen: dict[str, Change] = {}
    requests = 0
    for _ in range(_DRAIN_ATTEMPTS):
        number, total = 1, None
        while True:
            filters: dict[str, Any] = {
                "sort": "updatedAt:asc",
                "page_size": PAGE_SIZE,
                "updated_gte": floor,
                "updated_lt": upper,
            }
            if status is not None:
                filters["status"] = status
            page = await hook.list_leads_page(number, **filters)
            requests += 1
            for change in positioned(page.items, "GET /leads"):
                if change.at == instant:
                    seen.setdefault(change.lead_id, change)
            total = page.total
            if not page.has_more or len(page.items) < PAGE_SIZE or number >= MAX_PAGES_PER_POLL:
                break
            number += 1
        if total is None or len(seen) >= total:
            break
    return list(seen.values()), requests
