"""
The example DAGs of the lead operators and the lead-status sensor: they parse, and they run green.

Each runs under a real ``airflow dags test`` against the fake Octanist server in this process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dags_test_runner import AirflowHome, FlipWhenSeen

from airflow_provider_octanist.testing import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
EXAMPLE_DAGS = {
    "example_octanist_lead_won": EXAMPLES / "example_octanist_lead_won.py",
    "example_octanist_lead_lifecycle": EXAMPLES / "example_octanist_lead_lifecycle.py",
    "example_octanist_daily_export": EXAMPLES / "example_octanist_daily_export.py",
}


@pytest.mark.parametrize("dag_id", sorted(EXAMPLE_DAGS))
def test_example_dag_parses_without_import_errors(dag_id: str) -> None:
    from airflow.models import DagBag

    # LOAD_EXAMPLES is off for the whole suite (conftest); DagBag(include_examples=...) breaks on 3.3.
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS[dag_id]))
    assert bag.import_errors == {}
    assert list(bag.dags) == [dag_id]
    assert "octanist" in bag.dags[dag_id].tags


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOctanistServer]:
    with FakeOctanistServer(api_key="example-dags-" + "k3y" * 12) as fake:
        yield fake


@pytest.fixture(scope="module")
def airflow(server: FakeOctanistServer, tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    return AirflowHome(tmp_path_factory.mktemp("airflow-examples"), list(EXAMPLE_DAGS.values()))


def env_for(server: FakeOctanistServer, **extra: str) -> dict[str, str]:
    conn = {
        "conn_type": "octanist",
        "host": server.url,
        "password": server.api_key,
        "extra": {"retry_backoff": 0.01},
    }
    return {"AIRFLOW_CONN_OCTANIST_DEFAULT": json.dumps(conn), **extra}


def assert_all_succeeded(run: Any, tasks: set[str]) -> None:
    assert {task: state.state for task, state in run.tasks.items()} == dict.fromkeys(tasks, "success"), (
        run.describe()
    )
    assert run.returncode == 0, run.describe()


@pytest.mark.airflow
def test_lead_won_example_waits_deferred_then_books_the_value(
    server: FakeOctanistServer, airflow: AirflowHome
) -> None:
    server.add_lead(id="lead_example_won", name="Ada", utm_campaign="spring")
    flip = FlipWhenSeen(server, "lead_example_won", "won", value=1200)
    try:
        run = airflow.dags_test(
            "example_octanist_lead_won",
            conf={"lead_id": "lead_example_won"},
            env=env_for(server, OCTANIST_EXAMPLE_POKE_SECONDS="0.5"),
        )
    finally:
        flip.stop()
    assert_all_succeeded(run, {"wait_for_lead_won", "book_revenue"})
    assert flip.flipped.is_set()
    assert "Deferring" in run.output
    booking = run.xcom("book_revenue")
    assert booking["lead_id"] == "lead_example_won"
    assert booking["value"] == 1200
    assert booking["won_at"] == server.lead("lead_example_won")["updatedAt"]


@pytest.mark.airflow
def test_lifecycle_example_creates_qualifies_and_wins_a_lead(
    server: FakeOctanistServer, airflow: AirflowHome
) -> None:
    run = airflow.dags_test("example_octanist_lead_lifecycle", env=env_for(server))
    assert_all_succeeded(run, {"create_lead", "qualify", "mark_won", "read_back"})
    lead_id = run.xcom("create_lead")
    stored = server.lead(lead_id)
    assert stored["email"] == "grace@example.com"
    assert stored["status"] == "won"
    assert stored["value"] == 2500
    assert stored["qualifiedAt"] is not None
    assert run.xcom("read_back")["status"] == "won"


@pytest.mark.airflow
def test_daily_export_example_writes_the_leads_updated_in_the_interval(
    server: FakeOctanistServer, airflow: AirflowHome, tmp_path: Path
) -> None:
    for lead_id, updated in [
        ("lead_export_before", "2026-03-09T23:59:59.999Z"),
        ("lead_export_first", "2026-03-10T00:00:00.000Z"),
        ("lead_export_second", "2026-03-10T18:45:00.000Z"),
        ("lead_export_after", "2026-03-11T00:00:00.000Z"),
    ]:
        server.add_lead(id=lead_id, status="won" if "second" in lead_id else "open", updatedAt=updated)
    # A manual run at 2026-03-11 covers the last whole day before it: [2026-03-10, 2026-03-11).
    run = airflow.dags_test(
        "example_octanist_daily_export",
        logical_date="2026-03-11",
        conf={"export_url": tmp_path.as_uri()},
        env=env_for(server),
    )
    assert_all_succeeded(run, {"export_updated_leads"})
    summary = run.xcom("export_updated_leads")
    target = tmp_path / "leads-2026-03-10.jsonl"
    assert summary == {
        "path": target.as_uri(),
        "format": "jsonl",
        "compression": None,
        "rows": 2,
        "bytes": target.stat().st_size,
        "by_status": {"open": 1, "won": 1},
    }
    exported = [json.loads(line) for line in target.read_text().splitlines()]
    assert [lead["id"] for lead in exported] == ["lead_export_first", "lead_export_second"]
    assert [p.name for p in tmp_path.iterdir()] == ["leads-2026-03-10.jsonl"]
    assert server.api_key not in target.read_text()
    # Not in the task's log nor anywhere else under the Airflow home (the CLI's own debug output
    # on Airflow 3.0 echoes the supervisor's secret-masking messages, which is Airflow's, not ours).
    assert airflow.files_containing(server.api_key) == []
