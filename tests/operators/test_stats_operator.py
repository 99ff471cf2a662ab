"""OctanistGetStatsOperator, executed against the fake Octanist server over loopback."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_octanist.exceptions import OctanistResponseError
from airflow_provider_octanist.operators.octanist import OctanistGetStatsOperator

from .helpers import run


def test_stats_of_templated_days_are_the_custom_period(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_leads(2, status="won", createdAt="2026-03-10T08:00:00.000Z")
    octanist_server.add_lead(status="open", createdAt="2026-03-12T08:00:00.000Z")
    op = OctanistGetStatsOperator(task_id="stats", start_day="{{ ds }}", end_day="{{ ds }}")
    stats = run(op, {"ds": "2026-03-10"})
    assert stats["leads"]["total"] == 2
    assert stats["leads"]["byStatus"]["won"] == 2
    assert octanist_server.requests[-1].body == {
        "period": "custom",
        "startDate": "2026-03-10",
        "endDate": "2026-03-10",
    }


def test_stats_without_days_are_the_current_period(octanist_server: Any, octanist_conn: str) -> None:
    stats = run(
        OctanistGetStatsOperator(task_id="stats", period="{{ params.period }}"), {"params": {"period": ""}}
    )
    assert set(stats) >= {"usage", "leads", "conversion"}
    assert octanist_server.requests[-1].body == {"period": "current"}


def test_stats_days_do_not_touch_the_tasks_own_start_date() -> None:
    op = OctanistGetStatsOperator(task_id="stats", start_day="2026-03-01", end_day="2026-03-31")
    assert op.start_date is None
    assert set(op.template_fields) == {"period", "start_day", "end_day", "octanist_conn_id"}


def test_stats_of_an_unknown_period_fail_clearly(octanist_server: Any, octanist_conn: str) -> None:
    with pytest.raises(ValueError, match="period must be 'current', 'previous' or 'custom'"):
        run(OctanistGetStatsOperator(task_id="stats", period="last-week"))


def test_a_huge_total_is_capped_in_the_log_line(
    octanist_server: Any, octanist_conn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def with_huge_total(payload: Any) -> Any:
        payload["data"]["leads"]["total"] = "9" * 1_000_000
        return payload

    octanist_server.inject("transform", function=with_huge_total)
    run(OctanistGetStatsOperator(task_id="stats"))
    captured = capsys.readouterr()
    [line] = [line for line in (captured.out + captured.err).splitlines() if "Octanist statistics" in line]
    assert f"statistics: {'9' * 99}\u2026 lead(s) in the period" in line
    assert len(line) < 1_000


@pytest.mark.parametrize("leads", [[1, 2], "12 leads", 12, None])
def test_stats_whose_leads_are_not_an_object_fail_as_a_malformed_answer(
    octanist_server: Any, octanist_conn: str, leads: Any
) -> None:
    def with_leads(payload: Any) -> Any:
        payload["data"]["leads"] = leads
        return payload

    octanist_server.inject("transform", function=with_leads)
    with pytest.raises(OctanistResponseError, match="'leads' that is not an object") as caught:
        run(OctanistGetStatsOperator(task_id="stats"))
    assert type(leads).__name__ in str(caught.value)
