"""The write-back example DAG under a real ``airflow dags test``: a sqlite warehouse, the fake Octanist."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dags_test_runner import AirflowHome

from airflow_provider_octanist.testing import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLE = Path(__file__).resolve().parents[2] / "example_dags" / "example_octanist_write_back.py"
DAG_ID = "example_octanist_write_back"


def test_the_example_parses_without_import_errors() -> None:
    from airflow.models import DagBag

    bag = DagBag(dag_folder=str(EXAMPLE))
    assert bag.import_errors == {}
    assert list(bag.dags) == [DAG_ID]
    assert "octanist" in bag.dags[DAG_ID].tags


@pytest.fixture
def server() -> Iterator[FakeOctanistServer]:
    with FakeOctanistServer(api_key="write-back-example-" + "k3y" * 12) as fake:
        yield fake


@pytest.mark.airflow
def test_the_daily_sync_marks_the_deals_closed_that_day_won_with_their_amount(
    server: FakeOctanistServer, tmp_path: Path
) -> None:
    ada = server.add_lead(email="ada@example.com")
    grace = server.add_lead(email="grace@example.com")
    later = server.add_lead(email="later@example.com")
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE closed_deals (customer_email TEXT, amount NUMERIC, closed_on TEXT)")
        db.executemany(
            "INSERT INTO closed_deals VALUES (?, ?, ?)",
            [
                ("ada@example.com", 1200, "2026-03-10"),
                ("grace@example.com", 349.99, "2026-03-10"),
                ("later@example.com", 50, "2026-03-11"),
            ],
        )
    reports = tmp_path / "reports"
    airflow = AirflowHome(tmp_path / "airflow", [EXAMPLE])
    octanist = {"conn_type": "octanist", "host": server.url, "password": server.api_key}

    # A manual run at 2026-03-11 covers the last whole day before it: the deals closed on 2026-03-10.
    run = airflow.dags_test(
        DAG_ID,
        logical_date="2026-03-11",
        conf={"report_url": reports.as_uri()},
        env={
            "AIRFLOW_CONN_OCTANIST_DEFAULT": json.dumps(octanist),
            "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
        },
    )

    assert run.returncode == 0, run.describe()
    assert run.tasks["mark_closed_deals_won"].state == "success", run.describe()
    report = reports / "write-back-2026-03-10.jsonl"
    summary = run.xcom("mark_closed_deals_won")
    assert (summary["rows"], summary["updated"], summary["report_path"]) == (2, 2, report.as_uri())
    assert (server.lead(ada["id"])["status"], server.lead(ada["id"])["value"]) == ("won", 1200)
    assert (server.lead(grace["id"])["status"], server.lead(grace["id"])["value"]) == ("won", 349.99)
    assert server.lead(later["id"])["status"] == "open"
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["lead"]["email"] for line in lines) == ["ada@example.com", "grace@example.com"]
    assert {line["outcome"] for line in lines} == {"updated"}
    assert "Write-back of 2 row(s)" in run.output
    state = reports / "write-back-state.json"
    assert summary["state_path"] == state.as_uri()
    assert "ada@example.com" not in state.read_text(encoding="utf-8")
    assert server.api_key not in state.read_text(encoding="utf-8")
    assert airflow.files_containing(server.api_key) == []
