"""Without the OpenLineage provider every operator runs as before, and reports no lineage."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    class NoOpenLineage(importlib.abc.MetaPathFinder):
        # As if the OpenLineage provider (and its client) had never been installed.
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "openlineage" or name.startswith(
                ("airflow.providers.openlineage", "airflow.providers.common.compat.openlineage")
            ):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoOpenLineage())

    # Nor its distributions: Airflow finds providers through their entry points.
    import importlib.metadata
    import importlib_metadata

    for metadata in (importlib.metadata, importlib_metadata):
        discover = metadata.Distribution.discover

        def installed(discover=discover, **kwargs):
            return (
                dist for dist in discover(**kwargs)
                if "openlineage" not in (dist.metadata["Name"] or "").lower()
            )

        metadata.Distribution.discover = staticmethod(installed)

    from airflow_provider_octanist.operators.octanist import (
        OctanistCreateLeadOperator,
        OctanistGetLeadOperator,
        OctanistGetStatsOperator,
        OctanistListLeadsOperator,
        OctanistUpdateLeadOperator,
    )
    from airflow_provider_octanist.transfers.object_storage import (
        ObjectStorageToOctanistLeadsOperator,
        OctanistAdSpendToObjectStorageOperator,
        OctanistLeadsToObjectStorageOperator,
    )
    from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

    export_dir, outcomes = sys.argv[1], sys.argv[2]
    sql = "SELECT id, status FROM outcomes"
    created = OctanistCreateLeadOperator(task_id="create", name="Ada", email="ada@example.com").execute({})
    operators = [
        OctanistGetLeadOperator(task_id="get", lead_id=created),
        OctanistListLeadsOperator(task_id="list"),
        OctanistUpdateLeadOperator(task_id="update", lead_id=created, status="won", value=10),
        OctanistGetStatsOperator(task_id="stats"),
        OctanistLeadsToObjectStorageOperator(task_id="export_leads", path=f"{export_dir}/leads.jsonl"),
        OctanistAdSpendToObjectStorageOperator(
            task_id="export_ad_spend",
            path=f"{export_dir}/ad-spend.jsonl",
            start_day="2026-03-01",
            end_day="2026-03-02",
        ),
        ObjectStorageToOctanistLeadsOperator(task_id="from_a_file", path=outcomes),
        ObjectStorageToOctanistLeadsOperator(task_id="from_a_file_dry_run", path=outcomes, dry_run=True),
        SqlToOctanistLeadsOperator(task_id="from_sql", conn_id="warehouse", sql=sql),
        SqlToOctanistLeadsOperator(task_id="from_sql_dry_run", conn_id="warehouse", sql=sql, dry_run=True),
    ]
    results = {"create": created}
    lineage = {}
    for operator in operators:
        moves_data = hasattr(operator, "get_openlineage_facets_on_complete")
        if moves_data:
            lineage[f"{operator.task_id} on start"] = repr(operator.get_openlineage_facets_on_start())
        results[operator.task_id] = operator.execute({})
        if moves_data:
            lineage[operator.task_id] = repr(operator.get_openlineage_facets_on_complete(None))
    loaded = sorted(name for name in sys.modules if "openlineage" in name)
    from airflow.providers_manager import ProvidersManager

    providers = sorted(ProvidersManager().providers)
    report = {"results": results, "lineage": lineage, "loaded": loaded, "providers": providers}
    print(json.dumps(report, default=str))
    """
)


def test_every_operator_runs_and_reports_no_lineage_without_openlineage(
    octanist_server: Any, octanist_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    octanist_server.add_lead(id="lead_existing", status="open")
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text('{"id": "lead_existing", "status": "qualified"}\n', encoding="utf-8")
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE outcomes (id TEXT, status TEXT)")
        db.execute("INSERT INTO outcomes VALUES ('lead_existing', 'lost')")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, (tmp_path / "exports").as_uri(), outcomes.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert results["get"]["id"] == results["create"]
    assert len(results["list"]) == 2
    assert results["update"]["leadsUpdated"] == 1
    assert results["export_leads"]["rows"] == 2
    assert results["export_ad_spend"]["rows"] > 0
    assert results["from_a_file"]["leads_updated"] == results["from_sql"]["leads_updated"] == 1
    assert results["from_a_file_dry_run"]["valid"] == results["from_sql_dry_run"]["valid"] == 1
    moving_data = [
        "export_leads",
        "export_ad_spend",
        "from_a_file",
        "from_a_file_dry_run",
        "from_sql",
        "from_sql_dry_run",
    ]
    assert report["lineage"] == {
        name: "None" for task_id in moving_data for name in (task_id, f"{task_id} on start")
    }
    assert report["loaded"] == []
    assert "airflow-provider-octanist" in report["providers"]
    assert "apache-airflow-providers-openlineage" not in report["providers"]
