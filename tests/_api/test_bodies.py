"""
The bodies of the statistics and ad-spend reads: what is sent for each period, day and page.
A lead's create and update bodies are tested beside their module, in ``tests/test_lead_bodies.py``.
"""

from __future__ import annotations

from datetime import date

from airflow_provider_octanist import _api as api


def test_stats_body_implies_custom_from_dates() -> None:
    assert api.stats_body(None, date(2026, 1, 1), "2026-01-31") == {
        "period": "custom",
        "startDate": "2026-01-01",
        "endDate": "2026-01-31",
    }
    assert api.stats_body("previous", None, None) == {"period": "previous"}


def test_ad_spend_body() -> None:
    assert api.ad_spend_body("2026-03-01", "2026-03-01", "meta_ads", None, 500) == {
        "startDate": "2026-03-01",
        "endDate": "2026-03-01",
        "limit": 500,
        "platform": "meta_ads",
    }
