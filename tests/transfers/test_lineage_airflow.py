"""
OpenLineage events of real tasks: one ``airflow dags test`` of the lineage scenarios DAG in ``dags/``,
with the OpenLineage provider's file transport. Each test reads one task's COMPLETE event.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dags_test_runner import AirflowHome, DagsTestRun

from airflow_provider_octanist.lineage import lead_schema
from airflow_provider_octanist.testing import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytest.importorskip(
    "airflow.providers.openlineage", reason="the OpenLineage provider is not installed on this Airflow line"
)

pytestmark = pytest.mark.airflow

DAG_FILE = Path(__file__).parent / "dags" / "octanist_lineage_scenarios.py"
DAG_ID = "octanist_lineage_scenarios"
API_KEY = "oct-lineage-key-" + "Zp4Kq7Rt2W" * 5
TWINS = "twins@example.com"


class LineageRun:
    """The shared run and the OpenLineage events it wrote."""

    def __init__(
        self,
        server: FakeOctanistServer,
        run: DagsTestRun,
        events: list[dict[str, Any]],
        export: Path,
        outcomes: Path,
    ):
        self.server = server
        self.run = run
        self.events = events
        self.export = export
        self.outcomes = outcomes

    def complete(self, task_id: str) -> dict[str, Any]:
        """The COMPLETE event of ``task_id``."""
        return self.event(task_id, "COMPLETE")

    def event(self, task_id: str, event_type: str) -> dict[str, Any]:
        """The one event of ``task_id`` of this type (``START``, ``COMPLETE``)."""
        name = f"{DAG_ID}.{task_id}"
        found = [e for e in self.events if e["eventType"] == event_type and e["job"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {event_type} events for {name}\n{self.run.describe()}"
        return found[0]


@pytest.fixture(scope="module")
def lineage_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageRun]:
    root = tmp_path_factory.mktemp("airflow-lineage")
    export = root / "exports"
    events_file = root / "openlineage.jsonl"
    outcomes = root / "outcomes.jsonl"
    # The second row names two leads by their shared email: one row, two leads updated.
    rows = [{"id": "lead_3", "status": "qualified"}, {"email": TWINS, "status": "qualified"}]
    outcomes.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    warehouse = root / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE outcomes (id TEXT, status TEXT, value REAL)")
        db.executemany(
            "INSERT INTO outcomes VALUES (?, ?, ?)", [("lead_3", "won", 120.0), ("lead_4", "won", 80.0)]
        )
    with FakeOctanistServer(api_key=API_KEY, bulk_updates=True) as server:
        for n in range(5):
            server.add_lead(id=f"lead_{n}", status="won" if n < 3 else "open")
        server.add_leads(2, email=TWINS)
        home = AirflowHome(root / "home", [DAG_FILE])
        conn = {
            "conn_type": "octanist",
            "host": server.url,
            "password": API_KEY,
            "extra": {"retry_backoff": 0.01},
        }
        run = home.dags_test(
            DAG_ID,
            env={
                "AIRFLOW_CONN_OCTANIST_DEFAULT": json.dumps(conn),
                "OCTANIST_LINEAGE_EXPORT_URL": export.as_uri(),
                "OCTANIST_LINEAGE_OUTCOMES_URL": outcomes.as_uri(),
                "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                    {"type": "file", "log_file_path": str(events_file), "append": True}
                ),
            },
        )
        assert run.returncode == 0, run.describe()
        assert events_file.exists(), f"no OpenLineage events were written\n{run.describe()}"
        events = [json.loads(line) for line in events_file.read_text(encoding="utf-8").splitlines() if line]
        yield LineageRun(server, run, events, export, outcomes)


def octanist(base_url: str) -> str:
    return "octanist://" + base_url.split("://", 1)[1].split("/", 1)[0]


def test_the_leads_export_reads_the_octanist_leads_with_their_schema(lineage_run: LineageRun) -> None:
    [source] = lineage_run.complete("export_leads")["inputs"]

    assert (source["namespace"], source["name"]) == (octanist(lineage_run.server.url), "leads")
    fields = [(f["name"], f["type"]) for f in source["facets"]["schema"]["fields"]]
    assert fields == lead_schema()
    assert fields[0] == ("id", "string")
    assert ("value", "float") in fields


def test_the_leads_export_writes_the_file_with_its_rows_and_bytes(lineage_run: LineageRun) -> None:
    [target] = lineage_run.complete("export_leads")["outputs"]
    written = lineage_run.export / "leads.jsonl"

    assert (target["namespace"], target["name"]) == ("file", str(written))
    statistics = target["outputFacets"]["outputStatistics"]
    # The seven leads and the one the create task added before.
    assert statistics["rowCount"] == len(written.read_text(encoding="utf-8").splitlines()) == 8
    assert statistics["rowCount"] == lineage_run.run.xcom("export_leads")["rows"]
    assert statistics["size"] == written.stat().st_size


def test_the_ad_spend_export_reads_the_ad_spend_and_writes_its_file(lineage_run: LineageRun) -> None:
    event = lineage_run.complete("export_ad_spend")
    [source], [target] = event["inputs"], event["outputs"]
    written = lineage_run.export / "ad-spend.jsonl"

    assert (source["namespace"], source["name"]) == (octanist(lineage_run.server.url), "ad-spend")
    assert (target["namespace"], target["name"]) == ("file", str(written))
    statistics = target["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == len(written.read_text(encoding="utf-8").splitlines()) > 0
    assert statistics["size"] == written.stat().st_size


def test_a_task_creating_a_lead_through_the_hook_reports_the_leads_as_output(lineage_run: LineageRun) -> None:
    event = lineage_run.complete("create_a_lead")

    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [
        (octanist(lineage_run.server.url), "leads")
    ]
    assert event["inputs"] == []


def test_a_task_reading_leads_through_the_hook_reports_the_leads_as_input(lineage_run: LineageRun) -> None:
    # Listed a page at a time (three pages): still one input.
    event = lineage_run.complete("count_won_leads")

    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        (octanist(lineage_run.server.url), "leads")
    ]
    assert lineage_run.run.xcom("count_won_leads") == 3


def test_a_write_back_from_a_file_reads_the_file_and_writes_the_leads_it_updated(
    lineage_run: LineageRun,
) -> None:
    event = lineage_run.complete("outcomes_from_a_file")
    [source], [target] = event["inputs"], event["outputs"]
    summary = lineage_run.run.xcom("outcomes_from_a_file")

    assert (source["namespace"], source["name"]) == ("file", str(lineage_run.outcomes))
    assert (target["namespace"], target["name"]) == (octanist(lineage_run.server.url), "leads")
    # Two rows, three leads: the row naming an email updated both leads that share it.
    assert (summary["rows"], summary["leads_updated"]) == (2, 3)
    assert target["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert {lead["status"] for lead in lineage_run.server.leads if lead.get("email") == TWINS} == {
        "qualified"
    }


def test_a_write_back_from_sql_reads_the_table_and_writes_the_leads(lineage_run: LineageRun) -> None:
    event = lineage_run.complete("outcomes_from_sql")
    [target] = event["outputs"]

    assert [source["name"].rsplit(".", 1)[-1] for source in event["inputs"]] == ["outcomes"]
    assert event["inputs"][0]["namespace"].startswith("sqlite://")
    assert (target["namespace"], target["name"]) == (octanist(lineage_run.server.url), "leads")
    assert target["outputFacets"]["outputStatistics"]["rowCount"] == 2
    assert lineage_run.server.lead("lead_4")["status"] == "won"


@pytest.mark.parametrize("task_id", ["outcomes_from_a_file_dry_run", "outcomes_from_sql_dry_run"])
@pytest.mark.parametrize("event_type", ["START", "COMPLETE"])
def test_a_dry_run_write_back_reads_its_source_and_reports_no_octanist_output(
    lineage_run: LineageRun, task_id: str, event_type: str
) -> None:
    event = lineage_run.event(task_id, event_type)
    real_run = lineage_run.complete(task_id.removesuffix("_dry_run"))

    assert lineage_run.run.xcom(task_id)["dry_run"] is True
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        (d["namespace"], d["name"]) for d in real_run["inputs"]
    ]
    assert event["outputs"] == []


def test_no_event_carries_the_api_key(lineage_run: LineageRun) -> None:
    assert API_KEY not in json.dumps(lineage_run.events)
