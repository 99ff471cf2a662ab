"""
The reporting endpoints: ``POST /stats`` and ``POST /ad-spend`` (``_reports``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from .helpers import TIMESTAMP_RE, call, parse

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


def test_stats_summarise_the_leads_of_the_current_period(server: FakeOctanistServer) -> None:
    server.add_leads(2, source="gtm")
    server.add_lead(source="api", status="qualified")
    server.add_lead(source="gtm", status="won", value=1000)
    server.add_lead(source="gtm", status="won", value=3000)
    server.add_lead(source="manual", status="lost")
    data = call(server, "POST", "/api/stats", {}).data
    assert data["leads"] == {
        "total": 6,
        "byStatus": {"open": 2, "qualified": 1, "won": 2, "lost": 1},
        "bySource": {"api": 1, "gtm": 4, "manual": 1},
    }
    assert data["conversion"] == {
        "qualified": 3,
        "qualificationRate": round(4 / 6, 4),
        "winRate": round(2 / 3, 4),
        "averageValue": 2000,
        "totalValue": 4000,
    }
    usage = data["usage"]
    assert (usage["leadsUsed"], usage["leadsLimit"], usage["lockedLeads"]) == (6, 500, 0)
    assert TIMESTAMP_RE.match(usage["periodStart"])
    assert usage["periodStart"].endswith("-01T00:00:00.000Z")
    assert usage["periodEnd"].endswith("T23:59:59.999Z")


def test_stats_custom_period_counts_leads_created_in_range(server: FakeOctanistServer) -> None:
    server.add_lead(createdAt="2026-01-10T12:00:00Z")
    server.add_lead(createdAt="2026-01-31T23:59:59.999Z")
    server.add_lead(createdAt="2026-02-01T00:00:00Z")
    body = {"period": "custom", "startDate": "2026-01-01", "endDate": "2026-01-31"}
    data = call(server, "POST", "/api/stats", body).data
    assert data["leads"]["total"] == 2
    assert (data["usage"]["periodStart"], data["usage"]["periodEnd"]) == (
        "2026-01-01T00:00:00.000Z",
        "2026-01-31T23:59:59.999Z",
    )


def test_stats_previous_period_is_the_month_before(server: FakeOctanistServer) -> None:
    data = call(server, "POST", "/api/stats", {"period": "previous"}).data
    start = parse(data["usage"]["periodStart"])
    now = datetime.now(timezone.utc)
    assert (start.year * 12 + start.month) == (now.year * 12 + now.month - 1)


def test_stats_require_a_body(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/stats")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"period": "custom"}, "VALIDATION_ERROR"),
        ({"period": "custom", "startDate": "2026-01-01"}, "VALIDATION_ERROR"),
        ({"period": "custom", "startDate": "01/01/2026", "endDate": "2026-01-31"}, "INVALID_DATE"),
        ({"period": "custom", "startDate": "2026-02-01", "endDate": "2026-01-01"}, "VALIDATION_ERROR"),
        ({"period": "lifetime"}, "VALIDATION_ERROR"),
    ],
)
def test_stats_reject_bad_periods(server: FakeOctanistServer, body: dict[str, Any], code: str) -> None:
    reply = call(server, "POST", "/api/stats", body)
    assert (reply.status, reply.error_code) == (400, code)


def test_ad_spend_returns_deterministic_daily_rows_per_platform(server: FakeOctanistServer) -> None:
    body = {"startDate": "2026-03-01", "endDate": "2026-03-03"}
    first = call(server, "POST", "/api/ad-spend", body)
    second = call(server, "POST", "/api/ad-spend", body)
    assert first.data == second.data
    rows = first.data
    assert [(row["date"], row["platform"]) for row in rows] == [
        (day, platform)
        for day in ("2026-03-01", "2026-03-02", "2026-03-03")
        for platform in ("google_ads", "meta_ads")
    ]
    assert set(rows[0]) == {"date", "platform", "spend", "currency", "clicks", "impressions"}
    assert first.json["meta"]["pagination"] == {
        "limit": 50,
        "page": 1,
        "totalPages": 1,
        "total": 6,
        "hasMore": False,
    }


def test_ad_spend_is_paginated_and_filterable_by_platform(server: FakeOctanistServer) -> None:
    body = {"startDate": "2026-03-01", "endDate": "2026-03-10", "limit": 4, "page": 3, "platform": "meta_ads"}
    reply = call(server, "POST", "/api/ad-spend", body)
    assert [row["date"] for row in reply.data] == ["2026-03-09", "2026-03-10"]
    assert {row["platform"] for row in reply.data} == {"meta_ads"}
    assert reply.json["meta"]["pagination"]["hasMore"] is False


def test_ad_spend_can_group_by_platform(server: FakeOctanistServer) -> None:
    daily = call(server, "POST", "/api/ad-spend", {"startDate": "2026-03-01", "endDate": "2026-03-05"}).data
    grouped = call(
        server,
        "POST",
        "/api/ad-spend",
        {"startDate": "2026-03-01", "endDate": "2026-03-05", "groupBy": "platform"},
    ).data
    assert [row["platform"] for row in grouped] == ["google_ads", "meta_ads"]
    google_clicks = sum(row["clicks"] for row in daily if row["platform"] == "google_ads")
    assert grouped[0]["clicks"] == google_clicks


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "VALIDATION_ERROR"),
        ({"startDate": "2026-03-01"}, "VALIDATION_ERROR"),
        ({"startDate": "2026-3-1", "endDate": "2026-03-02"}, "INVALID_DATE"),
        ({"startDate": "2026-03-02", "endDate": "2026-03-01"}, "VALIDATION_ERROR"),
        ({"startDate": "2026-03-01", "endDate": "2026-03-02", "limit": 501}, "VALIDATION_ERROR"),
        ({"startDate": "2026-03-01", "endDate": "2026-03-02", "page": 0}, "VALIDATION_ERROR"),
    ],
)
def test_ad_spend_rejects_bad_requests(server: FakeOctanistServer, body: dict[str, Any], code: str) -> None:
    reply = call(server, "POST", "/api/ad-spend", body)
    assert (reply.status, reply.error_code) == (400, code)


def test_ad_spend_allows_pages_of_500(server: FakeOctanistServer) -> None:
    reply = call(
        server, "POST", "/api/ad-spend", {"startDate": "2025-01-01", "endDate": "2025-12-31", "limit": 500}
    )
    assert len(reply.data) == 500
    assert reply.json["meta"]["pagination"]["total"] == 730
