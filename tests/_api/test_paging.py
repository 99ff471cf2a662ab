"""
Walking a listing page after page: when it stops, pages that repeat, the hard page limit,
max_results, and ad-spend pages asked for in the body.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from _api.conftest import LIST, SETTINGS
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._api import paging
from airflow_provider_octanist.exceptions import (
    OctanistResponseError,
)

# -- pagination --------------------------------------------------------------------------------


def _page(number: int, ids: list[str], *, has_more: bool = True, total_pages: int | None = None) -> api.Page:
    return api.Page([{"id": i} for i in ids], number, has_more, total_pages, None, "req_1")


def test_paging_stops_when_has_more_is_false_at_an_empty_page_or_at_total_pages() -> None:
    assert api.should_continue(_page(1, ["a"], has_more=False), set(), LIST) is False
    assert api.should_continue(_page(1, [], has_more=True), set(), LIST) is False
    assert api.should_continue(_page(3, ["a"], total_pages=3), set(), LIST) is False
    assert api.should_continue(_page(2, ["a"], total_pages=3), set(), LIST) is True


def test_paging_stops_with_an_error_when_a_page_repeats() -> None:
    seen: set[Any] = set()
    assert api.should_continue(_page(1, ["a", "b"]), seen, LIST) is True
    assert api.should_continue(_page(2, ["c", "d"]), seen, LIST) is True

    with pytest.raises(OctanistResponseError, match=r"returned the same page again for GET /leads \(page 3"):
        api.should_continue(_page(3, ["a", "b"]), seen, LIST)


def test_repeated_rows_without_ids_are_recognised_by_their_content() -> None:
    seen: set[Any] = set()
    rows = api.Page([{"date": "2026-03-01", "spend": 1.0}], 1, True, None, None, None)
    assert api.should_continue(rows, seen, LIST) is True

    with pytest.raises(OctanistResponseError, match="same page again"):
        api.should_continue(replace(rows, page=2), seen, LIST)


def test_paging_has_a_hard_page_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 3)
    seen: set[Any] = set()

    assert api.should_continue(_page(2, ["b"]), seen, LIST) is True
    with pytest.raises(OctanistResponseError, match="Stopped listing GET /leads after 3 pages"):
        api.should_continue(_page(3, ["c"]), seen, LIST)


def _answer(items: list[Any], page: int, has_more: bool) -> api.Answer:
    payload = {
        "success": True,
        "data": items,
        "meta": {
            "pagination": {"page": page, "hasMore": has_more, "totalPages": 9, "total": 99},
            "requestId": "r",
        },
    }
    return api.Answer(200, {}, json.dumps(payload).encode())


def test_paging_walks_pages_and_cuts_at_max_results() -> None:
    paging = api.Paging(api.leads_listing({"limit": "2"}), SETTINGS, max_results=3)

    first = paging.next_call()
    assert first == api.Call("GET", "/leads", {"limit": "2", "page": "1"})
    assert paging.read(first, _answer([{"id": "a"}, {"id": "b"}], 1, True)) == [{"id": "a"}, {"id": "b"}]
    second = paging.next_call()
    assert second is not None
    assert second.params == {"limit": "2", "page": "2"}
    assert paging.read(second, _answer([{"id": "c"}, {"id": "d"}], 2, True)) == [{"id": "c"}]
    assert paging.next_call() is None


def test_ad_spend_pages_go_in_the_body() -> None:
    listing = api.ad_spend_listing({"startDate": "2026-03-01", "endDate": "2026-03-02", "limit": 10})

    assert listing.call(2) == api.Call(
        "POST", "/ad-spend", body={"startDate": "2026-03-01", "endDate": "2026-03-02", "limit": 10, "page": 2}
    )
