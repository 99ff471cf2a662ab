"""
The reporting endpoints as the fake answers them: ``POST /stats`` and ``POST /ad-spend``.

Stats are counted from the stored leads; ad-spend rows are synthetic but deterministic.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._envelope import ApiError, Response, ok
from airflow_provider_octanist.testing._lead_fields import (
    LEAD_STATUSES,
    OPEN,
    QUALIFIED,
    WON,
    format_timestamp,
    parse_timestamp,
)
from airflow_provider_octanist.testing._query import DEFAULT_PAGE_SIZE, body_number, paginate

if TYPE_CHECKING:
    from airflow_provider_octanist.testing._store import LeadStore

_MAX_AD_SPEND_PAGE_SIZE = 500
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AD_PLATFORMS: tuple[str, ...] = ("google_ads", "meta_ads")
_AD_CURRENCY = "EUR"


def stats(store: LeadStore, payload: dict[str, Any]) -> Response:
    """``POST /stats``: usage, leads by status and source, and conversion for one period."""
    start, end = _period(payload)
    with store._lock:
        leads = [
            dict(lead) for lead in store._leads.values() if start <= parse_timestamp(lead["createdAt"]) <= end
        ]
    by_status = {status: sum(1 for lead in leads if lead["status"] == status) for status in LEAD_STATUSES}
    by_source: dict[str, int] = {}
    for lead in leads:
        source = lead["source"] or "unknown"
        by_source[source] = by_source.get(source, 0) + 1
    total = len(leads)
    qualified = by_status[QUALIFIED] + by_status[WON]
    won_values = [lead["value"] for lead in leads if lead["status"] == WON and lead["value"] is not None]
    total_value = sum(won_values)
    data = {
        "usage": {
            "leadsUsed": total,
            "leadsLimit": store.leads_limit,
            "lockedLeads": max(0, total - store.leads_limit),
            "periodStart": format_timestamp(start),
            "periodEnd": format_timestamp(end),
        },
        "leads": {"total": total, "byStatus": by_status, "bySource": dict(sorted(by_source.items()))},
        "conversion": {
            "qualified": qualified,
            "qualificationRate": round((total - by_status[OPEN]) / total, 4) if total else 0.0,
            "winRate": round(by_status[WON] / qualified, 4) if qualified else 0.0,
            "averageValue": round(total_value / len(won_values), 2) if won_values else 0,
            "totalValue": total_value,
        },
    }
    return ok(data)


def ad_spend(payload: dict[str, Any]) -> Response:
    """``POST /ad-spend``: one row per day and platform, or one per platform with ``groupBy``."""
    for name in ("startDate", "endDate"):
        if payload.get(name) is None:
            raise ApiError(400, "VALIDATION_ERROR", f"{name} is required", {"field": name})
    first_day, last_day = _day(payload["startDate"], "startDate"), _day(payload["endDate"], "endDate")
    if first_day > last_day:
        raise ApiError(400, "VALIDATION_ERROR", "startDate must not be after endDate")
    limit = body_number(
        payload.get("limit"), "limit", default=DEFAULT_PAGE_SIZE, high=_MAX_AD_SPEND_PAGE_SIZE
    )
    page = body_number(payload.get("page"), "page", default=1, high=None)
    platform = payload.get("platform")
    platforms = [p for p in _AD_PLATFORMS if platform is None or str(platform).lower() == p]
    days = [first_day + timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]
    rows = [_ad_spend_row(day, index, name) for day in days for index, name in enumerate(_AD_PLATFORMS)]
    rows = [row for row in rows if row["platform"] in platforms]
    if payload.get("groupBy") == "platform":
        rows = _ad_spend_by_platform(rows, first_day, last_day)
    chunk, pagination = paginate(rows, limit, page)
    return ok(chunk, pagination)


def _period(payload: dict[str, Any]) -> tuple[datetime, datetime]:
    """The first and last instant of the stats ``period``: current, previous or custom."""
    period = payload.get("period", "current")
    now = datetime.now(timezone.utc)
    if period == "current":
        return _month_bounds(now.year, now.month)
    if period == "previous":
        year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
        return _month_bounds(year, month)
    if period != "custom":
        raise ApiError(
            400, "VALIDATION_ERROR", "period must be current, previous or custom", {"field": "period"}
        )
    if payload.get("startDate") is None or payload.get("endDate") is None:
        raise ApiError(400, "VALIDATION_ERROR", "period custom requires startDate and endDate")
    first_day, last_day = _day(payload["startDate"], "startDate"), _day(payload["endDate"], "endDate")
    if first_day > last_day:
        raise ApiError(400, "VALIDATION_ERROR", "startDate must not be after endDate")
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc)
    end = datetime(last_day.year, last_day.month, last_day.day, 23, 59, 59, 999000, tzinfo=timezone.utc)
    return start, end


def _day(text: Any, what: str) -> date:
    """A ``YYYY-MM-DD`` day from a request body; raise ``ApiError`` INVALID_DATE otherwise."""
    if isinstance(text, str) and _DAY_RE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise ApiError(400, "INVALID_DATE", f"{what} must be a date in YYYY-MM-DD format", {"field": what})


def _month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    last_day = calendar.monthrange(year, month)[1]
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year, month, last_day, 23, 59, 59, 999000, tzinfo=timezone.utc)
    return start, end


def _ad_spend_row(day: date, index: int, platform: str) -> dict[str, Any]:
    """A synthetic but deterministic ad-spend row for one day and platform."""
    seed = day.toordinal() * 31 + index * 17
    clicks = 20 + seed % 80
    impressions = clicks * (25 + seed % 15)
    spend = round(clicks * (0.5 + (seed % 7) * 0.25), 2)
    return {
        "date": day.isoformat(),
        "platform": platform,
        "spend": spend,
        "currency": _AD_CURRENCY,
        "clicks": clicks,
        "impressions": impressions,
    }


def _ad_spend_by_platform(
    rows: list[dict[str, Any]], first_day: date, last_day: date
) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(
            row["platform"],
            {
                "platform": row["platform"],
                "startDate": first_day.isoformat(),
                "endDate": last_day.isoformat(),
                "spend": 0.0,
                "currency": _AD_CURRENCY,
                "clicks": 0,
                "impressions": 0,
            },
        )
        total["spend"] = round(total["spend"] + row["spend"], 2)
        total["clicks"] += row["clicks"]
        total["impressions"] += row["impressions"]
    return list(totals.values())
