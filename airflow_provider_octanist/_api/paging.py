"""
Paged listings (leads, ad spend): the call for each page, reading a page, and when to stop.

Guards against an API that claims more pages forever; the hooks only send the calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._api.calls import Answer, Call, request_id_of, server_time_of
from airflow_provider_octanist._api.responses import check_lead, check_row, legacy_list, unwrap
from airflow_provider_octanist._redact import scrub
from airflow_provider_octanist._timestamps import parse_timestamp
from airflow_provider_octanist.exceptions import OctanistResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from airflow_provider_octanist._api.settings import Settings


MAX_PAGES = 10_000
"""A list never reads more pages than this, whatever ``hasMore`` claims."""

MAX_REPEATING_PAGES = 3
"""Pages in a row that repeat most of their leads (more than half) before a listing stops with an error."""


@dataclass(frozen=True)
class Page:
    """One page of a list response."""

    items: list[Any]
    page: int
    has_more: bool
    total_pages: int | None
    total: int | None
    request_id: str | None
    server_time: datetime | None = None
    """The server's clock when it answered (``meta.timestamp``), if it said."""
    malformed: tuple[str, ...] = ()
    """Why each item left out of ``items`` was refused (only when the listing skips malformed items)."""
    limit: int | None = None
    """The page size the server says it used (``meta.pagination.limit``): it may serve fewer than asked."""


def page_from(call: Call, data: Any, payload: Any, page: int, headers: Mapping[str, str]) -> Page:
    """Read one page of a list response (current envelope with ``meta.pagination``, or legacy array)."""
    request_id = request_id_of(payload, headers)
    if not isinstance(payload, dict):
        # Legacy list: a bare array, one page only (``meta``, if any, was checked by ``unwrap``).
        return Page(list(data), page, False, 1, len(data), request_id)
    meta = payload.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    server_time = parse_timestamp(server_time_of(payload))
    if not isinstance(pagination, dict):
        # An envelope without pagination (as 1.0 answered): one page only.
        return Page(list(data), page, False, 1, len(data), request_id, server_time)
    has_more = pagination.get("hasMore")
    total_pages = _whole(pagination.get("totalPages"))
    total = _whole(pagination.get("total"))
    if not isinstance(has_more, bool):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with pagination.hasMore of type {type(has_more).__name__}",
            request_id=request_id,
        )
    limit = _whole(pagination.get("limit"))
    return Page(
        list(data),
        page,
        has_more,
        total_pages,
        total,
        request_id,
        server_time,
        limit=limit if limit is not None and limit > 0 else None,
    )


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def should_continue(page: Page, seen_first_ids: set[Any], call: Call) -> bool:
    """
    Decide whether to fetch the page after ``page``, guarding against an API that claims more forever.

    Stops at an empty page, at ``totalPages``, and raises when a page holds nothing new (every
    lead id on it came on an earlier page) or the hard limit of :data:`MAX_PAGES` is reached.
    """
    if not page.has_more or not page.items:
        return False
    if page.total_pages is not None and page.page >= page.total_pages:
        return False
    keys = item_keys(page.items)
    if all(key in seen_first_ids for key in keys):
        raise OctanistResponseError(
            f"Octanist returned the same page again for {call.label} (page {page.page} repeats an "
            "earlier one while claiming hasMore)",
            request_id=page.request_id,
            hint="The listing was stopped so it cannot loop forever; please report it with the request id.",
        )
    seen_first_ids.update(keys)
    if page.page >= MAX_PAGES:
        raise OctanistResponseError(
            f"Stopped listing {call.label} after {MAX_PAGES} pages while Octanist still claimed hasMore",
            request_id=page.request_id,
            hint="Narrow the filters or set max_results.",
        )
    return True


def item_keys(items: list[Any]) -> list[Any]:
    """What tells items apart on a walk: lead ids, or for rows without one (ad spend) the first row."""
    if all(isinstance(item, dict) and "id" in item for item in items):
        return [item["id"] for item in items]
    return [json.dumps(items[0], sort_keys=True, default=str)]


@dataclass(frozen=True)
class Listing:
    """A paged endpoint: how to ask for one of its pages and how to read what comes back."""

    method: str
    path: str
    check_item: Callable[[Any, Call, str | None], dict[str, Any]]
    params: Mapping[str, str] | None = None
    body: Mapping[str, Any] | None = None
    legacy: Callable[[Any], Any] | None = None
    skip_malformed: bool = False
    """Leave out (and describe in :attr:`Page.malformed`) items that fail ``check_item``."""

    def call(self, page: int) -> Call:
        """The call that fetches page ``page`` (1-based): in the query for GET, in the body for POST."""
        if self.body is not None:
            return Call(self.method, self.path, self.params, body={**self.body, "page": page})
        return Call(self.method, self.path, {**(self.params or {}), "page": str(page)})

    def read(self, call: Call, page: int, answer: Answer, settings: Settings) -> Page:
        """Parse the answer to ``call`` into a :class:`Page` of checked items."""
        status, headers, content = answer
        data, payload = unwrap(
            call,
            status,
            headers,
            content,
            settings,
            expect=list,
            legacy=self.legacy,
            in_items=self.skip_malformed,  # one lead with a NaN is skipped like any malformed lead
        )
        result = page_from(call, data, payload, page, headers)
        if not self.skip_malformed:
            items = [self.check_item(item, call, result.request_id) for item in result.items]
            return replace(result, items=items)
        items, malformed = [], []
        for item in result.items:
            try:
                items.append(self.check_item(item, call, result.request_id))
            except OctanistResponseError as exc:
                # Only logged, never raised: scrubbed here, as the hook scrubs what it raises.
                malformed.append(scrub(exc.message, settings.api_key))
        return replace(result, items=items, malformed=tuple(malformed))


def leads_listing(params: Mapping[str, str], *, skip_malformed: bool = False) -> Listing:
    """``GET /leads`` with query ``params`` (from :func:`lead_list_params`)."""
    return Listing(
        "GET", "/leads", check_lead, params=params, legacy=legacy_list, skip_malformed=skip_malformed
    )


def ad_spend_listing(body: Mapping[str, Any]) -> Listing:
    """``POST /ad-spend`` with ``body`` (from :func:`ad_spend_body`)."""
    return Listing("POST", "/ad-spend", check_row, body=body)


class Paging:
    """
    Walks a listing page by page, in order, up to ``max_results``; the hooks only send its calls.

    Usage: ``while (call := paging.next_call()) is not None: items = paging.read(call, send(call))``.

    Each lead comes out once: a lead a page repeats from an earlier one (the listing shifted while
    it was paged) is left out. A listing whose pages keep repeating most of their leads is not
    shifting but broken: it stops after ``MAX_REPEATING_PAGES`` such pages in a row.
    """

    def __init__(self, listing: Listing, settings: Settings, max_results: int | None = None) -> None:
        self.listing = listing
        self.settings = settings
        self.limit = max_results
        self.page = 1
        self.count = 0
        self.done = False
        self._seen: set[Any] = set()
        self._repeating = 0

    def next_call(self) -> Call | None:
        """The call for the next page, or ``None`` when the listing is complete."""
        return None if self.done else self.listing.call(self.page)

    def read(self, call: Call, answer: Answer) -> list[dict[str, Any]]:
        """Parse the answer to :meth:`next_call` and return its items (cut at ``max_results``)."""
        page = self.listing.read(call, self.page, answer, self.settings)
        fresh = self._unseen(page, call)
        items = fresh if self.limit is None else fresh[: self.limit - self.count]
        self.count += len(items)
        self.done = (self.limit is not None and self.count >= self.limit) or not should_continue(
            page, self._seen, call
        )
        self.page += 1
        return items

    def _unseen(self, page: Page, call: Call) -> list[Any]:
        """The items of ``page`` no earlier page had (by lead id); stop a walk that keeps repeating."""
        if not self._seen or not all(isinstance(item, dict) and "id" in item for item in page.items):
            return page.items
        fresh = [item for item in page.items if item["id"] not in self._seen]
        if fresh and 2 * (len(page.items) - len(fresh)) > len(page.items):
            self._repeating += 1
        else:
            self._repeating = 0
        if self._repeating >= MAX_REPEATING_PAGES:
            first = page.page - MAX_REPEATING_PAGES + 1
            raise OctanistResponseError(
                f"Octanist kept repeating leads for {call.label}: pages {first} to {page.page} each "
                "repeated most of their leads from earlier pages while claiming hasMore",
                request_id=page.request_id,
                hint=(
                    "The listing was stopped so it cannot return leads twice or page on forever; narrow "
                    "the filters (an updatedAt window) or report it with the request id."
                ),
            )
        return fresh
