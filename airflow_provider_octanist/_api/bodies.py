"""
The JSON bodies of the reporting calls (stats, ad spend), validated, and the checks of pages and caps.

A lead's create and update bodies live in ``airflow_provider_octanist._lead_bodies``; named here too.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_octanist._checks import non_empty_text, whole_number
from airflow_provider_octanist._lead_bodies import create_lead_body, update_lead_body
from airflow_provider_octanist._timestamps import format_day

__all__ = [
    "MAX_AD_SPEND_PAGE_SIZE",
    "ad_spend_body",
    "create_lead_body",
    "max_results_value",
    "page_number",
    "stats_body",
    "update_lead_body",
]


MAX_AD_SPEND_PAGE_SIZE = 500


def stats_body(period: str | None, start_date: Any, end_date: Any) -> dict[str, Any]:
    """Validate the body of ``POST /stats``; giving dates implies ``period='custom'``."""
    if period is None:
        period = "custom" if start_date is not None or end_date is not None else "current"
    if period not in ("current", "previous", "custom"):
        raise ValueError(f"period must be 'current', 'previous' or 'custom', got {period!r}.")
    body: dict[str, Any] = {"period": period}
    if period == "custom":
        if start_date is None or end_date is None:
            raise ValueError("period='custom' needs both start_date and end_date.")
        body["startDate"] = format_day(start_date, "start_date")
        body["endDate"] = format_day(end_date, "end_date")
        if body["startDate"] > body["endDate"]:
            raise ValueError(f"start_date {body['startDate']} is after end_date {body['endDate']}.")
    elif start_date is not None or end_date is not None:
        raise ValueError(f"start_date and end_date only apply to period='custom', not {period!r}.")
    return body


def ad_spend_body(
    start_date: Any, end_date: Any, platform: str | None, group_by: str | None, page_size: int
) -> dict[str, Any]:
    """Validate the body of ``POST /ad-spend`` (without ``page``)."""
    body: dict[str, Any] = {
        "startDate": format_day(start_date, "start_date"),
        "endDate": format_day(end_date, "end_date"),
        "limit": whole_number(page_size, "page_size", low=1, high=MAX_AD_SPEND_PAGE_SIZE),
    }
    if body["startDate"] > body["endDate"]:
        raise ValueError(f"start_date {body['startDate']} is after end_date {body['endDate']}.")
    if platform is not None:
        body["platform"] = non_empty_text(platform, "platform")
    if group_by is not None:
        body["groupBy"] = non_empty_text(group_by, "group_by")
    return body


def max_results_value(max_results: int | None) -> int | None:
    """Validate a cap on the number of results (``None`` for no cap)."""
    return None if max_results is None else whole_number(max_results, "max_results", low=1)


def page_number(page: int) -> int:
    """Validate a 1-based page number."""
    return whole_number(page, "page", low=1)
