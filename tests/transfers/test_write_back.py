"""The write-back operators' run: what Octanist answers, the verdict, the report, dry runs and arguments."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator
from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

from .conftest import SUM, SUMMARY_ZERO, from_csv, report_lines, run, use_connection, write_csv

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer


# -- what Octanist answers ----------------------------------------------------------------------


def test_an_email_shared_by_two_leads_is_ambiguous_and_fails_the_task_naming_it(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="shared@example.com")
    octanist_server.add_lead(email="shared@example.com")
    octanist_server.add_lead(email="ada@example.com")
    path = write_csv(
        tmp_path / "d.csv", ["email", "status"], [["ada@example.com", "won"], ["shared@example.com", "won"]]
    )
    report = tmp_path / "report.jsonl"
    operator = from_csv(path, report_path=report.as_uri())

    with pytest.raises(AirflowFailException) as caught:
        run(operator)

    message = str(caught.value)
    assert "1 of 2 row(s) from" in message
    assert "more than max_failed_rows=0" in message
    assert (
        "row 2 (email shared@example.com): ambiguous: Octanist reported a conflict for PATCH /leads"
        in message
    )
    assert f"Every row's outcome is in the report at {report.as_uri()}" in message
    assert operator.summary is not None
    assert operator.summary["ambiguous"] == 1
    assert operator.summary["updated"] == 1
    ambiguous = report_lines(report)[1]
    assert ambiguous["outcome"] == "ambiguous"
    assert ambiguous["error"]["status"] == 409
    assert ambiguous["error"]["code"] == "CONFLICT"


def test_a_lead_that_does_not_exist_is_not_found(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [["lead_gone", "won"]])

    summary = run(from_csv(path, max_failed_rows=1))

    assert (summary["not_found"], summary["updated"]) == (1, 0)


def test_a_note_under_a_read_timeout_is_sent_once_and_its_row_failed(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server, timeout=0.2)
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=3, method="PATCH")
    path = write_csv(tmp_path / "d.csv", ["id", "status", "note"], [[lead["id"], "won", "Signed"]])
    report = tmp_path / "report.jsonl"

    summary = run(from_csv(path, max_failed_rows=1, report_path=report.as_uri()))

    assert (summary["failed"], summary["updated"]) == (1, 0)
    assert octanist_server.request_count("PATCH") == 1
    [line] = report_lines(report)
    assert line["outcome"] == "failed"
    assert "No answer from Octanist for PATCH /leads after 1 attempt(s)" in line["error"]["message"]
    assert "its outcome is unknown" in line["error"]["message"]


def test_an_update_without_a_note_under_a_read_timeout_is_retried_and_goes_through(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server, timeout=1.0)
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=3, method="PATCH")
    path = write_csv(tmp_path / "d.csv", ["id", "status", "value"], [[lead["id"], "won", "10"]])

    summary = run(from_csv(path))

    assert summary["updated"] == 1
    assert octanist_server.request_count("PATCH") == 2


def test_max_failed_rows_is_the_most_rows_that_may_go_wrong(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="ok@example.com")
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status"],
        [["ok@example.com", "won"], ["gone@example.com", "won"], ["", "won"]],
    )

    assert run(from_csv(path, max_failed_rows=2))["updated"] == 1
    with pytest.raises(AirflowFailException, match=r"2 of 3 row\(s\) .* more than max_failed_rows=1"):
        run(from_csv(path, max_failed_rows=1))


def test_the_failure_names_the_first_five_problems_and_counts_the_rest(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv", ["email", "status"], [[f"n{i}@example.com", "closed"] for i in range(8)]
    )

    with pytest.raises(AirflowFailException) as caught:
        run(from_csv(path))

    message = str(caught.value)
    assert [f"row {i} (email n{i - 1}@example.com): invalid" in message for i in range(1, 9)] == [
        True
    ] * 5 + [False] * 3
    assert "; and 3 more." in message
    assert octanist_server.request_count() == 0


# -- the report and the summary -----------------------------------------------------------------


def test_the_report_has_one_line_per_row_and_never_the_api_key(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    ada = octanist_server.add_lead(email="ada@example.com")
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status", "value"],
        [["ada@example.com", "won", "10"], ["nobody@example.com", "won", "1"], ["x@example.com", "open", ""]],
    )
    report = tmp_path / "reports" / "day.jsonl"

    summary = run(
        from_csv(path, report_path=str(tmp_path.as_uri()) + "/reports/{{ ds }}.jsonl", max_failed_rows=2),
        {"ds": "day"},
    )

    assert summary["report_path"] == report.as_uri()
    lines = report_lines(report)
    assert lines[0] == {
        "row": 1,
        "outcome": "updated",
        "lead": {"email": "ada@example.com"},
        "lead_id": ada["id"],
        "leads_updated": 1,
    }
    assert lines[1]["row"] == 2
    assert lines[1]["outcome"] == "not_found"
    assert lines[1]["lead"] == {"email": "nobody@example.com"}
    assert lines[1]["error"]["status"] == 404
    assert lines[1]["error"]["code"] == "NOT_FOUND"
    assert lines[1]["error"]["request_id"].startswith("req_")
    assert lines[2] == {
        "row": 3,
        "outcome": "invalid",
        "lead": {"email": "x@example.com"},
        "error": {"message": "Unknown lead status 'open': use one of qualified, won, lost."},
    }
    assert octanist_server.api_key not in report.read_text(encoding="utf-8")
    assert [p.name for p in report.parent.iterdir()] == ["day.jsonl"]  # no temporary object left


def test_a_task_stopped_by_a_rejected_key_leaves_no_report(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_octanist.exceptions import OctanistAuthError

    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        json.dumps({"conn_type": "octanist", "host": octanist_server.url, "password": "wrong-key"}),
    )
    path = write_csv(
        tmp_path / "d.csv", ["email", "status"], [[f"n{i}@example.com", "won"] for i in range(50)]
    )
    reports = tmp_path / "reports"

    with pytest.raises(OctanistAuthError):
        run(from_csv(path, report_path=(reports / "r.jsonl").as_uri()))

    assert list(reports.iterdir()) == []
    assert octanist_server.request_count("PATCH") <= 8  # the rows in flight, then it stopped reading


def test_dry_run_checks_every_row_and_sends_nothing(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status"],
        [["a@example.com", "won"], ["b@example.com", "won"], ["", "won"]],
    )
    report = tmp_path / "report.jsonl"

    summary = run(from_csv(path, dry_run=True, max_failed_rows=1, report_path=report.as_uri()))

    assert summary == {
        **SUMMARY_ZERO,
        "rows": 3,
        "valid": 2,
        "invalid": 1,
        "dry_run": True,
        "report_path": report.as_uri(),
        "reconciliation": f"{SUM} + valid: 3 + 0 = 0 + 0 + 0 + 1 + 0 + 0 + 2 (adds up)",
    }
    assert octanist_server.requests == []
    assert [line["outcome"] for line in report_lines(report)] == ["valid", "valid", "invalid"]


def test_the_summary_and_source_stay_on_the_operator_after_execute(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "d.csv", ["email", "status"], [["a@example.com", "won"]])
    operator = from_csv(path, dry_run=True)

    summary = run(operator)

    assert operator.summary == summary
    assert operator.source == path


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be between 1 and 64, got 0"),
        ({"max_concurrency": 65}, "max_concurrency must be between 1 and 64, got 65"),
        ({"max_failed_rows": -1}, "max_failed_rows must be at least 0, got -1"),
        ({"dry_run": "yes"}, "dry_run must be True or False, got 'yes'"),
        ({"format": "xml"}, "format must be 'jsonl', 'csv' or 'parquet', got 'xml'"),
        ({"path": ""}, r"path must be a URL such as 's3://bucket/"),
        ({"report_path": " "}, r"path must be a URL such as 's3://bucket/"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "write_back", "path": "file:///tmp/rows.csv", **kwargs}
    with pytest.raises(ValueError, match=message):
        ObjectStorageToOctanistLeadsOperator(**arguments)


def test_templated_fields_are_those_an_airflow_user_expects() -> None:
    assert set(ObjectStorageToOctanistLeadsOperator.template_fields) == {
        "path",
        "report_path",
        "state_path",
        "octanist_conn_id",
    }
    assert set(SqlToOctanistLeadsOperator.template_fields) == {
        "conn_id",
        "sql",
        "parameters",
        "report_path",
        "state_path",
        "octanist_conn_id",
    }
    assert SqlToOctanistLeadsOperator.template_ext == (".sql",)


def test_provider_info_registers_both_write_back_modules() -> None:
    import importlib

    from airflow_provider_octanist import get_provider_info

    into_octanist = {
        entry["source-integration-name"]: importlib.import_module(entry["python-module"])
        for entry in get_provider_info()["transfers"]
        if entry["target-integration-name"] == "Octanist"
    }
    assert (
        into_octanist["Common IO"].ObjectStorageToOctanistLeadsOperator
        is ObjectStorageToOctanistLeadsOperator
    )
    assert into_octanist["Common SQL"].SqlToOctanistLeadsOperator is SqlToOctanistLeadsOperator


@pytest.mark.parametrize("operator", [ObjectStorageToOctanistLeadsOperator, SqlToOctanistLeadsOperator])
def test_each_write_back_documents_every_parameter_once_and_what_it_returns(operator: type[Any]) -> None:
    import inspect

    from airflow_provider_octanist.transfers._write_back import _ToOctanistLeadsOperator

    names = {
        name
        for cls in (operator, _ToOctanistLeadsOperator)
        for name in inspect.signature(cls.__init__).parameters
        if name not in ("self", "kwargs")
    }
    doc = inspect.getdoc(operator) or ""

    assert {name: doc.count(f":param {name}:") for name in names} == dict.fromkeys(names, 1)
    assert doc.count(":returns:") == 1
