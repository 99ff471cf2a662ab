"""Every hook method against the fake Octanist API: the sync hook and, for reads, its async twin."""

from __future__ import annotations

import asyncio
import inspect
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pendulum
import pytest

from airflow_provider_octanist.exceptions import (
    OctanistConflictError,
    OctanistNotFoundError,
    OctanistResponseError,
)
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook, OctanistHook

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer

    from .conftest import Twin

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _list_requests(server: FakeOctanistServer) -> list[dict[str, list[str]]]:
    return [r.query for r in server.requests if r.method == "GET" and r.path == "/api/leads"]


# -- test_connection ---------------------------------------------------------------------------


def test_test_connection_succeeds_with_the_right_key(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    ok, message = hook.test_connection()

    assert ok is True
    assert message == (
        f"Connected to Octanist at {octanist_server.url}; the API key of 'octanist_default' is valid."
    )
    assert [(r.method, r.path) for r in octanist_server.requests] == [("POST", "/api/check")]
    assert octanist_server.requests[0].api_key_sent


def test_test_connection_fails_clearly_with_a_wrong_key(
    make_twin: Callable[..., Twin], connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    connect(password="not-the-key")

    ok, message = make_twin().test_connection()

    assert ok is False
    assert "Octanist rejected the API key of connection 'octanist_default'" in message
    assert "Invalid or missing API key" in message  # the legacy flat body of POST /check
    assert "Check the connection's password" in message
    assert octanist_server.request_count("POST", "/api/check") == 1


def test_test_connection_reports_a_refused_plain_http_host_without_sending_anything(
    make_twin: Callable[..., Twin], connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    connect(host="http://octanist.example.com/api")

    ok, message = make_twin().test_connection()

    assert ok is False
    assert "refusing to send the API key over plain http://" in message
    assert octanist_server.requests == []


# -- get_lead ----------------------------------------------------------------------------------


def test_get_lead_returns_the_data_object(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    lead = octanist_server.add_lead(id="lead_abc123", name="Ada", email="ada@example.com", value=12.5)

    assert hook.get_lead("lead_abc123") == lead
    [request] = octanist_server.requests
    assert (request.method, request.raw_path, request.query) == ("GET", "/api/leads/lead_abc123", {})


def test_get_lead_of_an_unknown_id_raises_not_found(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    with pytest.raises(OctanistNotFoundError) as caught:
        hook.get_lead("lead_missing")

    assert caught.value.status_code == 404
    assert caught.value.code == "NOT_FOUND"
    assert caught.value.message.startswith("Octanist found nothing for GET /leads/lead_missing")
    assert caught.value.request_id is not None
    assert caught.value.request_id.startswith("req_")
    assert octanist_server.request_count() == 1


# -- listing -----------------------------------------------------------------------------------


def test_list_leads_page_returns_one_page_with_its_pagination(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    leads = [octanist_server.add_lead(createdAt=T0 + timedelta(minutes=i)) for i in range(5)]

    page = hook.list_leads_page(2, page_size=2, sort="createdAt:asc")

    assert page.items == leads[2:4]
    assert (page.page, page.has_more, page.total_pages, page.total) == (2, True, 3, 5)
    assert page.request_id is not None
    assert page.request_id.startswith("req_")
    assert _list_requests(octanist_server) == [{"limit": ["2"], "sort": ["createdAt:asc"], "page": ["2"]}]


def test_list_leads_reads_every_page_in_order(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    leads = [octanist_server.add_lead(createdAt=T0 + timedelta(seconds=i)) for i in range(250)]

    listed = hook.list_leads(sort="createdAt:asc", page_size=100)

    assert [lead["id"] for lead in listed] == [lead["id"] for lead in leads]
    assert [q["page"] for q in _list_requests(octanist_server)] == [["1"], ["2"], ["3"]]


def test_list_leads_default_page_size_is_the_api_maximum(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(3)

    assert len(hook.list_leads()) == 3
    assert _list_requests(octanist_server) == [{"limit": ["100"], "page": ["1"]}]


def test_iter_leads_returns_the_same_leads_as_list_leads(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(7)

    assert list(hook.iter_leads(page_size=3)) == hook.list_leads(page_size=3)


def test_max_results_stops_reading_pages(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    leads = [octanist_server.add_lead(createdAt=T0 + timedelta(seconds=i)) for i in range(250)]

    first_150 = hook.list_leads(sort="createdAt:asc", max_results=150)
    assert [lead["id"] for lead in first_150] == [lead["id"] for lead in leads[:150]]
    assert len(_list_requests(octanist_server)) == 2

    octanist_server.clear_requests()
    assert len(hook.list_leads(max_results=100)) == 100
    assert len(_list_requests(octanist_server)) == 1  # a full first page is enough


def test_iter_leads_fetches_a_page_only_when_it_is_needed(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(5)

    leads = sync_hook.iter_leads(page_size=2)
    assert octanist_server.request_count() == 0  # nothing is sent before the first lead is wanted
    next(leads)
    next(leads)
    assert octanist_server.request_count() == 1
    next(leads)
    assert octanist_server.request_count() == 2


def test_async_iter_leads_fetches_a_page_only_when_it_is_needed(
    connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(5)

    async def first_three() -> list[int]:
        counts = []
        async with OctanistAsyncHook() as hook:
            async for _ in hook.iter_leads(page_size=2):
                counts.append(octanist_server.request_count())
                if len(counts) == 3:
                    break
        return counts

    assert asyncio.run(first_three()) == [1, 1, 2]


def test_filters_reach_the_api_in_its_own_words(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    won_recently = octanist_server.add_lead(
        name="Grace", status="won", value=900, gclid="abc", updatedAt=T0 + timedelta(hours=2)
    )
    octanist_server.add_lead(name="Grace", status="won", value=900, updatedAt=T0 - timedelta(hours=2))
    octanist_server.add_lead(name="Grace", status="lost", gclid="abc", updatedAt=T0 + timedelta(hours=2))

    listed = hook.list_leads(
        status="WIN",  # legacy spelling, any case
        updated_gt=datetime(2026, 3, 1, 12, 0),  # naive: UTC
        created_lte=pendulum.datetime(2030, 1, 1, tz="Europe/Amsterdam"),
        value_gte=100,
        search="grace",
        sort="updated_at:asc",  # legacy snake_case
        fields=["name", "status"],
        filters={"gclid[exists]": True},
        page_size=10,
    )

    assert listed == [{"id": won_recently["id"], "name": "Grace", "status": "won"}]
    assert _list_requests(octanist_server) == [
        {
            "limit": ["10"],
            "status": ["won"],
            "sort": ["updatedAt:asc"],
            "search": ["grace"],
            "fields": ["id,name,status"],
            "updatedAt[gt]": ["2026-03-01T12:00:00.000Z"],
            "createdAt[lte]": ["2029-12-31T23:00:00.000Z"],
            "value[gte]": ["100"],
            "gclid[exists]": ["true"],
            "page": ["1"],
        }
    ]


def test_iso_string_time_bounds_are_sent_in_utc(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    hook.list_leads(updated_gte="2026-03-01T13:00:00+01:00", qualified_lt="2026-03-02")

    [query] = _list_requests(octanist_server)
    assert query["updatedAt[gte]"] == ["2026-03-01T12:00:00.000Z"]
    assert query["qualifiedAt[lt]"] == ["2026-03-02T00:00:00.000Z"]


def test_legacy_bare_array_list_answer_is_one_page(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    legacy = [{"id": "lead_1", "status": "win"}, {"id": "lead_2", "status": "open"}]
    octanist_server.inject("json", payload=legacy, path="/api/leads")

    assert hook.list_leads() == [{"id": "lead_1", "status": "won"}, {"id": "lead_2", "status": "open"}]
    assert octanist_server.request_count() == 1


# -- writes (sync hook) ------------------------------------------------------------------------


def test_create_lead_returns_the_new_id_and_stores_the_fields(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    created = sync_hook.create_lead(
        name="Linus",
        email="linus@example.com",
        custom={"company": "Acme"},
        gclid="g-1",
        ad_storage=True,
        utm_source="newsletter",
        note=None,  # None means "not given"
    )

    assert created["message"] == "Lead added"
    lead = octanist_server.lead(created["id"])
    assert (lead["name"], lead["email"], lead["custom"], lead["gclid"]) == (
        "Linus",
        "linus@example.com",
        '{"company":"Acme"}',
        "g-1",
    )
    [request] = octanist_server.requests
    assert request.body == {
        "name": "Linus",
        "email": "linus@example.com",
        "custom": '{"company":"Acme"}',  # a string, as production documents it
        "gclid": "g-1",
        "ad_storage": True,
        "utm_source": "newsletter",
    }
    assert request.headers["Content-Type"] == "application/json"


def test_create_lead_accepts_the_legacy_answer(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("json", payload={"id": "lead_legacy"}, method="POST", path="/api/leads")

    assert sync_hook.create_lead(email="x@example.com") == {"id": "lead_legacy", "message": "Lead added"}


def test_update_lead_by_id_sets_status_and_value(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()

    result = sync_hook.update_lead(lead_id=lead["id"], status="won", value="1200", note="signed")

    assert result == {"leadId": lead["id"], "leadsUpdated": 1, "message": "Lead updated successfully"}
    stored = octanist_server.lead(lead["id"])
    assert (stored["status"], stored["value"], stored["note"]) == ("won", 1200, "signed")
    [request] = octanist_server.requests
    assert (request.method, request.path) == ("PATCH", "/api/leads")
    assert request.body == {"id": lead["id"], "status": "won", "value": 1200, "note": "signed"}


def test_update_lead_by_email_marks_it_lost_with_a_reason(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead(email="bob@example.com")

    sync_hook.update_lead(email="bob@example.com", status="lost", loss_reason="too expensive")

    stored = octanist_server.lead(lead["id"])
    assert (stored["status"], stored["lossReason"]) == ("lost", "too expensive")
    assert octanist_server.requests[0].body == {
        "email": "bob@example.com",
        "status": "lost",
        "lossReason": "too expensive",
    }


def test_update_lead_matching_several_leads_is_a_conflict(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(2, email="twins@example.com")

    with pytest.raises(OctanistConflictError) as caught:
        sync_hook.update_lead(email="twins@example.com", status="qualified", value=1)

    assert (caught.value.status_code, caught.value.code) == (409, "CONFLICT")
    assert "Use a more specific identifier" in str(caught.value)
    assert octanist_server.request_count() == 1


def test_update_lead_accepts_the_legacy_answer(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject(
        "json",
        payload={"success": True, "leadId": "lead_1", "status": "won"},
        method="PATCH",
        path="/api/leads",
    )

    result = sync_hook.update_lead(lead_id="lead_1", status="won", value=1)

    assert result == {"leadId": "lead_1", "leadsUpdated": 1, "message": "Lead updated successfully"}


# -- stats and ad spend ------------------------------------------------------------------------


def test_get_stats_of_the_current_period(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.add_leads(2)
    octanist_server.add_lead(status="won", value=100)

    stats = hook.get_stats()

    assert stats["leads"]["total"] == 3
    assert stats["leads"]["byStatus"] == {"open": 2, "qualified": 0, "won": 1, "lost": 0}
    assert octanist_server.requests[0].body == {"period": "current"}


def test_get_stats_of_a_custom_period(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.add_lead(createdAt="2026-01-10T10:00:00Z")
    octanist_server.add_lead(createdAt="2026-02-10T10:00:00Z")

    stats = hook.get_stats(start_date="2026-01-01", end_date=datetime(2026, 1, 31, 23, 0))

    assert stats["leads"]["total"] == 1
    assert octanist_server.requests[0].body == {
        "period": "custom",
        "startDate": "2026-01-01",
        "endDate": "2026-01-31",
    }


def test_get_ad_spend_reads_every_page_in_order(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    rows = hook.get_ad_spend("2026-03-01", "2026-03-10", page_size=7)

    assert len(rows) == 20  # 10 days x 2 platforms in the fake server
    assert rows[0]["date"] == "2026-03-01"
    assert rows[-1]["date"] == "2026-03-10"
    bodies = [r.body for r in octanist_server.requests]
    assert bodies == [
        {"startDate": "2026-03-01", "endDate": "2026-03-10", "limit": 7, "page": n} for n in (1, 2, 3)
    ]


def test_get_ad_spend_with_filters_and_a_cap(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    rows = hook.get_ad_spend(
        datetime(2026, 3, 1, tzinfo=timezone.utc),
        pendulum.date(2026, 3, 10),
        platform="google_ads",
        group_by="day",
        max_results=4,
        page_size=3,
    )

    assert [row["platform"] for row in rows] == ["google_ads"] * 4
    assert octanist_server.request_count() == 2
    assert octanist_server.requests[0].body == {
        "startDate": "2026-03-01",
        "endDate": "2026-03-10",
        "limit": 3,
        "platform": "google_ads",
        "groupBy": "day",
        "page": 1,
    }


def test_the_async_hook_mirrors_every_read_method_of_the_sync_hook() -> None:
    reads = (
        "test_connection",
        "get_lead",
        "list_leads_page",
        "iter_leads",
        "list_leads",
        "get_stats",
        "get_ad_spend",
    )

    for name in reads:
        assert callable(getattr(OctanistAsyncHook, name)), name
        sync_params = list(_params(getattr(OctanistHook, name)))
        assert list(_params(getattr(OctanistAsyncHook, name))) == sync_params, name


def _params(function: Callable[..., object]) -> list[str]:
    return list(inspect.signature(function).parameters)


# -- an API that claims more pages forever -----------------------------------------------------


def test_a_listing_that_claims_has_more_forever_stops_at_total_pages(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(250)
    octanist_server.lying_pagination = True

    listed = hook.list_leads(page_size=100)

    assert len(listed) == 250
    assert len({lead["id"] for lead in listed}) == 250
    assert [q["page"] for q in _list_requests(octanist_server)] == [["1"], ["2"], ["3"]]


def test_a_listing_that_repeats_a_page_forever_stops_with_a_clear_error(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    # No totalPages to stop at: the same page with hasMore, again and again.
    page = {
        "success": True,
        "data": [{"id": "lead_1"}, {"id": "lead_2"}],
        "meta": {"pagination": {"hasMore": True}, "requestId": "req_000000000002"},
    }
    octanist_server.inject("json", payload=page, count=100)

    with pytest.raises(OctanistResponseError) as caught:
        hook.list_leads(page_size=2)

    assert caught.value.message == (
        "Octanist returned the same page again for GET /leads "
        "(page 2 repeats an earlier one while claiming hasMore)"
    )
    assert "stopped so it cannot loop forever" in str(caught.value)
    assert caught.value.request_id == "req_000000000002"
    assert octanist_server.request_count() == 2
