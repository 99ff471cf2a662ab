"""
The list query of ``GET /leads``: paging, sorting, filters, search and the listing quirks (``_query``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .helpers import call, list_ids

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


def test_list_defaults_to_newest_first_with_pagination_meta(server: FakeOctanistServer) -> None:
    added = server.add_leads(3)
    reply = call(server, "GET", "/api/leads")
    assert [lead["id"] for lead in reply.data] == [lead["id"] for lead in reversed(added)]
    assert reply.json["meta"]["pagination"] == {
        "limit": 50,
        "page": 1,
        "totalPages": 1,
        "total": 3,
        "hasMore": False,
    }


def test_list_pages_through_every_lead_exactly_once(server: FakeOctanistServer) -> None:
    server.add_leads(7)
    seen: list[str] = []
    for page in (1, 2, 3):
        reply = call(server, "GET", f"/api/leads?limit=3&page={page}")
        pagination = reply.json["meta"]["pagination"]
        assert (pagination["page"], pagination["totalPages"], pagination["total"]) == (page, 3, 7)
        assert pagination["hasMore"] is (page < 3)
        seen += [lead["id"] for lead in reply.data]
    assert sorted(seen) == sorted(lead["id"] for lead in server.leads)
    assert len(seen) == 7
    assert call(server, "GET", "/api/leads?limit=3&page=4").data == []


def test_equal_timestamps_are_ordered_by_id_so_paging_is_deterministic(server: FakeOctanistServer) -> None:
    at = "2026-03-10T12:00:00.000Z"
    for lead_id in ("lead_c", "lead_a", "lead_d", "lead_b"):
        server.add_lead(id=lead_id, createdAt=at, updatedAt=at)
    asc = list_ids(server, "?sort=updatedAt:asc&limit=2") + list_ids(
        server, "?sort=updatedAt:asc&limit=2&page=2"
    )
    assert asc == ["lead_a", "lead_b", "lead_c", "lead_d"]
    assert list_ids(server, "?sort=updatedAt:desc") == ["lead_d", "lead_c", "lead_b", "lead_a"]


def test_sort_accepts_legacy_snake_case(server: FakeOctanistServer) -> None:
    old = server.add_lead(id="lead_old")
    new = server.add_lead(id="lead_new")
    server.set_status(old["id"], "won")
    assert list_ids(server, "?sort=updated_at:asc") == [new["id"], old["id"]]
    assert list_ids(server, "?sort=created_at:desc") == [new["id"], old["id"]]


def test_sort_puts_missing_values_last_when_ascending(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_none")
    server.add_lead(id="lead_big", value=500)
    server.add_lead(id="lead_small", value=5)
    assert list_ids(server, "?sort=value:asc") == ["lead_small", "lead_big", "lead_none"]


@pytest.mark.parametrize("sort", ["bogus:asc", "createdAt:up", "custom:desc"])
def test_invalid_sort_is_a_validation_error(server: FakeOctanistServer, sort: str) -> None:
    reply = call(server, "GET", f"/api/leads?sort={sort}")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "page=0", "page=-1"])
def test_limit_and_page_out_of_range_are_validation_errors(server: FakeOctanistServer, query: str) -> None:
    reply = call(server, "GET", f"/api/leads?{query}")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_limit_of_100_is_allowed(server: FakeOctanistServer) -> None:
    server.add_leads(101)
    reply = call(server, "GET", "/api/leads?limit=100")
    assert len(reply.data) == 100
    assert reply.json["meta"]["pagination"]["hasMore"] is True


@pytest.mark.parametrize(("query", "expected"), [("status=won", {"lead_w"}), ("status=win", {"lead_w"})])
def test_status_filter_accepts_current_and_legacy_spelling(
    server: FakeOctanistServer, query: str, expected: set[str]
) -> None:
    server.add_lead(id="lead_o")
    server.add_lead(id="lead_w", status="won")
    assert set(list_ids(server, f"?{query}")) == expected


def test_unknown_status_filter_is_a_validation_error(server: FakeOctanistServer) -> None:
    reply = call(server, "GET", "/api/leads?status=closed")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_updated_at_comparison_filters(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.000Z")
    server.add_lead(id="lead_2", updatedAt="2026-02-01T00:00:00.000Z")
    server.add_lead(id="lead_3", updatedAt="2026-03-01T00:00:00.000Z")
    assert set(list_ids(server, "?updatedAt[gt]=2026-02-01T00:00:00.000Z")) == {"lead_3"}
    assert set(list_ids(server, "?updatedAt[gte]=2026-02-01T00:00:00.000Z")) == {"lead_2", "lead_3"}
    assert set(list_ids(server, "?updatedAt[lt]=2026-02-01")) == {"lead_1"}
    assert set(list_ids(server, "?updatedAt[lte]=2026-02-01T01:00:00%2B01:00")) == {"lead_1", "lead_2"}


def test_time_filters_keep_sub_millisecond_precision(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.000Z")
    assert list_ids(server, "?updatedAt[gte]=2026-01-01T00:00:00.000500Z") == []
    assert list_ids(server, "?updatedAt[lt]=2026-01-01T00:00:00.000500Z") == ["lead_1"]


def test_legacy_updated_after_means_updated_at_greater_than(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.000Z")
    server.add_lead(id="lead_2", updatedAt="2026-02-01T00:00:00.000Z")
    assert list_ids(server, "?updated_after=2026-01-01T00:00:00Z") == ["lead_2"]


def test_value_filters_compare_numbers(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_none")
    server.add_lead(id="lead_50", value=50)
    server.add_lead(id="lead_150", value=150.5)
    assert set(list_ids(server, "?value[gte]=100")) == {"lead_150"}
    assert set(list_ids(server, "?value[lt]=100")) == {"lead_50"}
    assert set(list_ids(server, "?value=50")) == {"lead_50"}
    assert call(server, "GET", "/api/leads?value[gt]=lots").error_code == "VALIDATION_ERROR"


def test_exists_filters_on_timestamps_and_click_ids(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_g", gclid="Cj0KCQ")
    server.add_lead(id="lead_q", status="qualified")
    assert list_ids(server, "?gclid[exists]=true") == ["lead_g"]
    assert list_ids(server, "?gclid[exists]=false") == ["lead_q"]
    assert list_ids(server, "?qualifiedAt[exists]=true") == ["lead_q"]
    assert call(server, "GET", "/api/leads?gclid[exists]=maybe").error_code == "INVALID_FILTER"


def test_equality_filters_on_source_and_utm(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_a", source="gtm", utm_source="google")
    server.add_lead(id="lead_b", source="manual", utm_source="google")
    assert list_ids(server, "?source=gtm") == ["lead_a"]
    assert set(list_ids(server, "?utm_source=google")) == {"lead_a", "lead_b"}
    assert list_ids(server, "?source=gtm&utm_source=google") == ["lead_a"]


@pytest.mark.parametrize(
    "query", ["foo=bar", "status[gt]=won", "gclid=abc", "createdAt[eq]=2026-01-01", "name=Ada"]
)
def test_unknown_filter_fields_and_operators_are_invalid_filter(
    server: FakeOctanistServer, query: str
) -> None:
    reply = call(server, "GET", f"/api/leads?{query}")
    assert (reply.status, reply.error_code) == (400, "INVALID_FILTER")


@pytest.mark.parametrize(
    "query", ["updatedAt[gt]=yesterday", "createdAt[lt]=2026-13-01", "updated_after=soon"]
)
def test_unparsable_dates_are_invalid_date(server: FakeOctanistServer, query: str) -> None:
    reply = call(server, "GET", f"/api/leads?{query}")
    assert (reply.status, reply.error_code) == (400, "INVALID_DATE")


def test_search_matches_name_email_and_phone_case_insensitively(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_n", name="Ada Lovelace")
    server.add_lead(id="lead_e", email="ADA@example.com")
    server.add_lead(id="lead_p", phone="+31 6 1234")
    server.add_lead(id="lead_x", name="Grace", note="ada in a note does not count")
    assert set(list_ids(server, "?search=ada")) == {"lead_n", "lead_e"}
    assert list_ids(server, "?search=1234") == ["lead_p"]


def test_fields_selects_fields_and_always_includes_id(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", name="Ada", email="ada@example.com")
    assert call(server, "GET", "/api/leads?fields=name,status").data == [
        {"id": "lead_1", "name": "Ada", "status": "open"}
    ]


def test_lying_pagination_always_claims_more_and_repeats_the_last_page(server: FakeOctanistServer) -> None:
    server.add_leads(3)
    server.lying_pagination = True
    last = call(server, "GET", "/api/leads?limit=2&page=2")
    beyond = call(server, "GET", "/api/leads?limit=2&page=9")
    assert last.json["meta"]["pagination"]["hasMore"] is True
    assert beyond.json["meta"]["pagination"]["hasMore"] is True
    assert beyond.json["meta"]["pagination"]["page"] == 9
    assert beyond.data == last.data
    assert len(beyond.data) == 1


def test_a_page_cap_serves_fewer_leads_than_asked_and_says_the_limit_it_used(
    server: FakeOctanistServer,
) -> None:
    server.add_leads(120)
    server.page_cap = 50
    pages = [call(server, "GET", f"/api/leads?limit=100&page={n}") for n in (1, 2, 3)]
    assert [len(page.data) for page in pages] == [50, 50, 20]
    assert [page.json["meta"]["pagination"]["hasMore"] for page in pages] == [True, True, False]
    assert pages[0].json["meta"]["pagination"] == {
        "limit": 50,
        "page": 1,
        "totalPages": 3,
        "total": 120,
        "hasMore": True,
    }
    assert len(call(server, "GET", "/api/leads?limit=20").data) == 20, "a smaller limit is honoured"


def test_gte_as_gt_applies_every_gte_time_filter_as_gt(server: FakeOctanistServer) -> None:
    lead = server.add_lead(updatedAt="2026-01-01T00:00:00.000Z")
    query = "?updatedAt[gte]=2026-01-01T00:00:00.000Z"
    assert list_ids(server, query) == [lead["id"]]
    server.gte_as_gt = True
    assert list_ids(server, query) == []


def test_ignore_page_answers_every_page_with_the_first(server: FakeOctanistServer) -> None:
    server.add_leads(5, updatedAt="2026-01-01T00:00:00.000Z")
    query = "?sort=updatedAt:asc&limit=2&page="
    assert list_ids(server, query + "1") != list_ids(server, query + "2")
    server.ignore_page = True
    assert list_ids(server, query + "1") == list_ids(server, query + "2") == list_ids(server, query + "3")


def test_a_change_during_listing_runs_once_before_the_answer_to_that_page(
    server: FakeOctanistServer,
) -> None:
    leads = server.add_leads(4, updatedAt="2026-01-01T00:00:00.000Z")
    ran: list[int] = []

    def edit_the_first() -> None:
        server.update_lead(leads[0]["id"], note="moved")
        ran.append(1)

    server.change_during_listing(edit_the_first, page=2)
    query = "?sort=updatedAt:asc&limit=2&updatedAt[lte]=2026-01-01T00:00:00.000Z"
    first = list_ids(server, query + "&page=1")
    assert ran == []
    second = list_ids(server, query + "&page=2")
    assert ran == [1]
    assert first == sorted(lead["id"] for lead in leads)[:2]
    assert len(second) == 1, "the edited lead left the listing, so its last page shifted"
    list_ids(server, query + "&page=2")
    assert ran == [1], "it runs once"


def test_a_change_during_listing_needs_a_page_number(server: FakeOctanistServer) -> None:
    with pytest.raises(ValueError, match="page must be a page number"):
        server.change_during_listing(lambda: None, page=0)


def test_a_deleted_lead_is_gone_from_every_answer(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.add_lead(id="lead_2")
    server.delete_lead("lead_1")
    assert call(server, "GET", "/api/leads/lead_1").error_code == "NOT_FOUND"
    assert list_ids(server) == ["lead_2"]
    with pytest.raises(KeyError, match="lead_1"):
        server.delete_lead("lead_1")


def test_a_refused_filter_is_answered_invalid_filter_and_other_filters_still_work(
    server: FakeOctanistServer,
) -> None:
    server.add_lead(id="lead_1")
    server.refused_filters = frozenset({"createdAt"})
    refused = call(server, "GET", "/api/leads?createdAt[lt]=2030-01-01T00:00:00.000Z&limit=1")
    assert (refused.status, refused.error_code) == (400, "INVALID_FILTER")
    assert list_ids(server, "?updatedAt[lt]=2030-01-01T00:00:00.000Z") == ["lead_1"]
