"""Bad input raises a clear ValueError before any request; odd but valid lead ids stay in one path segment."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from airflow_provider_octanist.exceptions import OctanistNotFoundError

if TYPE_CHECKING:
    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.testing import FakeOctanistServer

    from .conftest import Twin


# -- lead ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lead_id", "words"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("\t\n", "must not be empty"),
        (None, "must be a string"),
        (123, "must be a string"),
        (".", "is not a lead id"),
        ("..", "is not a lead id"),
        (" .. ", "is not a lead id"),
        ("lead\n1", "control characters"),
        ("lead\x00", "control characters"),
        ("x" * 257, "too long"),
    ],
)
def test_a_bad_lead_id_is_refused_before_any_request(
    hook: Twin, octanist_server: FakeOctanistServer, lead_id: Any, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        hook.get_lead(lead_id)

    assert octanist_server.request_count() == 0


@pytest.mark.parametrize(
    "lead_id",
    [
        "lead/1",
        "lead?x=1",
        "lead#frag",
        "lead%2F1",
        "100%",
        "../check",
        "../../api/check",
        "lead/../../check",
        "...",
        "lead 1",
        "léad_ü",
        "リード",
        "lead;drop",
        "a+b&c=d",
    ],
)
def test_an_odd_lead_id_is_percent_encoded_into_its_own_path_segment(
    hook: Twin, octanist_server: FakeOctanistServer, lead_id: str
) -> None:
    lead = octanist_server.add_lead(id=lead_id)

    assert hook.get_lead(lead_id) == lead

    [request] = octanist_server.requests
    assert (request.method, request.path, request.query) == ("GET", f"/api/leads/{lead_id}", {})
    assert request.raw_path == "/api/leads/" + quote(lead_id, safe="")


def test_an_odd_unknown_lead_id_is_a_not_found_of_the_lead_endpoint(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    with pytest.raises(OctanistNotFoundError, match=r"Lead \.\./check not found"):
        hook.get_lead("../check")

    assert [(r.method, r.path) for r in octanist_server.requests] == [("GET", "/api/leads/../check")]


def test_surrounding_white_space_is_not_part_of_a_lead_id(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead(id="lead_1")

    assert hook.get_lead("  lead_1\n") == lead


# -- list filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "words"),
    [
        ({"status": "new"}, "Unknown lead status 'new': use one of open, qualified, won, lost"),
        ({"status": "converted"}, "Unknown lead status"),
        ({"status": ""}, "Unknown lead status"),
        ({"status": 1}, "must be a string"),
        ({"page_size": 0}, "page_size must be between 1 and 100, got 0"),
        ({"page_size": 101}, "page_size must be between 1 and 100, got 101"),
        ({"page_size": True}, "page_size must be a whole number"),
        ({"page_size": "50"}, "page_size must be a whole number"),
        ({"page_size": 10.0}, "page_size must be a whole number"),
        ({"sort": "updatedAt:sideways"}, "sort must look like 'updatedAt:asc'"),
        ({"sort": "colour:asc"}, "sort must look like 'updatedAt:asc'"),
        ({"sort": ""}, "sort must be a non-empty string"),
        ({"updated_gt": "yesterday"}, "updated_gt must be an ISO 8601 date-time"),
        ({"updated_gt": "now"}, "updated_gt must be an ISO 8601 date-time"),
        ({"updated_gt": "10/03/2026"}, "updated_gt must be an ISO 8601 date-time"),
        ({"updated_gt": "2026-02-30T00:00:00Z"}, "updated_gt must be an ISO 8601 date-time"),
        ({"created_lte": ""}, "created_lte must be a datetime, a date or an ISO 8601 string"),
        ({"qualified_gte": 1767225600}, "qualified_gte must be a datetime, a date or an ISO 8601 string"),
        ({"value_gt": "a lot"}, "value_gt must be a number"),
        ({"value_gte": True}, "value_gte must be a number"),
        ({"value_lt": float("nan")}, "value_lt must be a number"),
        ({"search": "  "}, "search must be a non-empty string"),
        ({"fields": ""}, "fields must be a non-empty string"),
        ({"source": ""}, "source must be a non-empty string"),
        ({"filters": {"colour": "red"}}, "Unknown lead filter 'colour'"),
        ({"filters": {"status[gt]": "won"}}, "status supports eq, not gt"),
        ({"filters": {"gclid[exists]": "maybe"}}, "takes true or false"),
        ({"filters": {"gclid": "abc"}}, "gclid supports exists, not eq"),
        ({"filters": {"updatedAt[gt]": "soon"}}, "updatedAt[gt] must be an ISO 8601 date-time"),
        ({"filters": {"value[lt]": "cheap"}}, "value[lt] must be a number"),
        ({"max_results": 0}, "max_results must be at least 1, got 0"),
        ({"max_results": -5}, "max_results must be at least 1"),
        ({"max_results": True}, "max_results must be a whole number"),
    ],
)
def test_bad_list_filters_are_refused_before_any_request(
    hook: Twin, octanist_server: FakeOctanistServer, filters: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=_literal(words)):
        hook.list_leads(**filters)
    with pytest.raises(ValueError, match=_literal(words)):
        hook.iter_leads(**filters)

    assert octanist_server.request_count() == 0


def test_an_unknown_filter_keyword_is_a_type_error(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    with pytest.raises(TypeError, match="updated_after"):
        hook.list_leads(updated_after="2026-03-01")

    assert octanist_server.request_count() == 0


@pytest.mark.parametrize("page", [0, -1, True, "2"])
def test_a_bad_page_number_is_refused_before_any_request(
    hook: Twin, octanist_server: FakeOctanistServer, page: Any
) -> None:
    with pytest.raises(ValueError, match="page must be"):
        hook.list_leads_page(page)

    assert octanist_server.request_count() == 0


# -- writes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({}, "needs at least one of name, email, phone or custom"),
        ({"note": "only a note"}, "needs at least one of name, email, phone or custom"),
        ({"name": ""}, "needs at least one of name, email, phone or custom"),
        ({"name": "x", "status": "won"}, "Unknown lead field(s) status"),
        ({"name": "x", "colour": "red", "value": 3}, "Unknown lead field(s) colour, value"),
        ({"name": 42}, "name must be a string"),
        ({"name": "x", "custom": 3}, "custom must be a string, a dict or a list"),
        ({"name": "x", "ad_storage": "yes"}, "ad_storage must be true/false"),
    ],
)
def test_bad_create_fields_are_refused_before_any_request(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=_literal(words)):
        sync_hook.create_lead(**fields)

    assert octanist_server.request_count() == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"status": "won"}, "needs lead_id, email or phone"),
        ({"lead_id": "lead_1"}, "has nothing to change"),
        ({"email": "a@example.com"}, "has nothing to change"),
        ({"lead_id": "", "status": "won"}, "must not be empty"),
        (
            {"lead_id": "lead_1", "status": "open"},
            "Unknown lead status 'open': use one of qualified, won, lost",
        ),
        ({"lead_id": "lead_1", "status": "closed"}, "Unknown lead status 'closed'"),
        ({"lead_id": "lead_1", "loss_reason": "price"}, "loss_reason is only kept when status='lost'"),
        ({"lead_id": "lead_1", "status": "won", "loss_reason": "price"}, "loss_reason is only kept"),
        ({"lead_id": "lead_1", "value": "a lot"}, "value must be a number"),
        ({"lead_id": "lead_1", "value": -5}, "value must be a finite, non-negative number"),
        ({"lead_id": "lead_1", "value": True}, "value must be a number"),
        ({"lead_id": "lead_1", "note": 5}, "note must be a string"),
        ({"email": " ", "status": "won"}, "email must be a non-empty string"),
    ],
)
def test_bad_updates_are_refused_before_any_request(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, change: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=_literal(words)):
        sync_hook.update_lead(**change)

    assert octanist_server.request_count() == 0


# -- stats and ad spend ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (("this-year",), {}, "period must be 'current', 'previous' or 'custom'"),
        (("custom",), {"start_date": "2026-01-01"}, "period='custom' needs both start_date and end_date"),
        (("current",), {"start_date": "2026-01-01"}, "only apply to period='custom'"),
        (
            (),
            {"start_date": "2026-02-01", "end_date": "2026-01-01"},
            "start_date 2026-02-01 is after end_date",
        ),
        (
            (),
            {"start_date": "01/02/2026", "end_date": "2026-03-01"},
            "start_date must be a date or a 'YYYY-MM-DD'",
        ),
        (
            (),
            {"start_date": "2026-02-30", "end_date": "2026-03-01"},
            "start_date must be a date or a 'YYYY-MM-DD'",
        ),
    ],
)
def test_bad_stats_periods_are_refused_before_any_request(
    hook: Twin, octanist_server: FakeOctanistServer, args: tuple[Any, ...], kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=_literal(words)):
        hook.get_stats(*args, **kwargs)

    assert octanist_server.request_count() == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (("2026-03-10", "2026-03-01"), {}, "start_date 2026-03-10 is after end_date 2026-03-01"),
        (("March 1", "2026-03-01"), {}, "start_date must be a date or a 'YYYY-MM-DD' string"),
        (("2026-03-01", None), {}, "end_date must be a date or a 'YYYY-MM-DD' string"),
        (("2026-03-01", "2026-03-02"), {"page_size": 501}, "page_size must be between 1 and 500"),
        (("2026-03-01", "2026-03-02"), {"platform": ""}, "platform must be a non-empty string"),
        (("2026-03-01", "2026-03-02"), {"max_results": 0}, "max_results must be at least 1"),
    ],
)
def test_bad_ad_spend_requests_are_refused_before_any_request(
    hook: Twin, octanist_server: FakeOctanistServer, args: tuple[Any, ...], kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=_literal(words)):
        hook.get_ad_spend(*args, **kwargs)

    assert octanist_server.request_count() == 0


def _literal(text: str) -> str:
    return re.escape(text)
