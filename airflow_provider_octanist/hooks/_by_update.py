"""
The sync hook's ``iter_leads_by_update``: every matching lead once, oldest ``updatedAt`` first,
read by keyset paging (the change feed's ``KeysetWalk``) so no edit meanwhile can hide a lead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from airflow_provider_octanist import _api as api
from airflow_provider_octanist._keyset.cursor import Cursor, positioned
from airflow_provider_octanist._keyset.walk import SORT, KeysetWalk, walkable
from airflow_provider_octanist._timestamps import to_utc
from airflow_provider_octanist.exceptions import OctanistResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_octanist.types import Lead


def leads_by_update(
    list_page: Callable[..., api.Page],
    check_query: Callable[[dict[str, Any]], object],
    max_results: int | None,
    filters: dict[str, Any],
) -> Iterator[Lead]:
    """
    Check ``filters`` (those of ``iter_leads``) and return the walk over the leads they match.

    ``list_page`` is the sync hook's ``list_leads_page``, ``check_query`` its check of a listing's
    filters.

    :raises ValueError: for a ``sort`` other than ``updatedAt:asc``, or a raw ``updatedAt`` filter
        (the walk sets that bound itself); raised here, before any request.
    """
    query = dict(filters)
    if not walkable(query):
        raise ValueError(
            f"iter_leads_by_update reads in {SORT} order and sets the updatedAt bounds itself: "
            "leave sort unset and give updated_gte/updated_lt, not raw updatedAt filters."
        )
    query.pop("sort", None)
    start, before = query.pop("updated_gte", None), query.pop("updated_lt", None)
    fields = query.get("fields")
    asked = None if fields is None else api.lead_list_params(fields=fields)["fields"].split(",")
    keep_updated_at = asked is None or "updatedAt" in asked
    if asked is not None and not keep_updated_at:
        query["fields"] = [*asked, "updatedAt"]  # the walk places leads by it; left out below
    limit = api.max_results_value(max_results)
    check_query(query)  # checks every filter before the first request
    walk = KeysetWalk(
        None if start is None else Cursor(to_utc(start, "updated_gte")),
        before=None if before is None else to_utc(before, "updated_lt"),
        page_size=query.get("page_size", api.DEFAULT_PAGE_SIZE),
    )
    return _walk(list_page, walk, query, limit, keep_updated_at=keep_updated_at)


def _walk(
    list_page: Callable[..., api.Page],
    walk: KeysetWalk,
    query: dict[str, Any],
    limit: int | None,
    *,
    keep_updated_at: bool,
) -> Iterator[Lead]:
    yielded: set[str] = set()
    while (request := walk.next_request()) is not None:
        page = list_page(request.number, sort=SORT, exact_time=request.exact_time, **query, **request.filters)
        changes, rejected = positioned(page.items, "GET /leads")
        if rejected:
            raise OctanistResponseError(rejected[0], request_id=page.request_id)
        for change in walk.read(page, changes):
            if change.lead_id in yielded:
                continue  # edited while the walk ran and met again: it comes once
            yielded.add(change.lead_id)
            lead = change.lead
            if not keep_updated_at:
                lead = {name: value for name, value in lead.items() if name != "updatedAt"}
            yield cast("Lead", lead)
            if limit is not None and len(yielded) >= limit:
                return
