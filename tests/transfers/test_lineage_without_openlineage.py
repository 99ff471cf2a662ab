"""Without the OpenLineage provider every operator runs as before, and reports no lineage."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

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
        OctanistAdSpendToObjectStorageOperator,
        OctanistLeadsToObjectStorageOperator,
    )

    export_dir = sys.argv[1]
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
    ]
    results = {"create": created}
    for operator in operators:
        results[operator.task_id] = operator.execute({})
    lineage = {
        op.task_id: repr(op.get_openlineage_facets_on_complete(None)) for op in operators[-2:]
    }
    loaded = sorted(name for name in sys.modules if "openlineage" in name)
    from airflow.providers_manager import ProvidersManager

    providers = sorted(ProvidersManager().providers)
    report = {"results": results, "lineage": lineage, "loaded": loaded, "providers": providers}
    print(json.dumps(report, default=str))
    """
)


def test_every_operator_runs_and_reports_no_lineage_without_openlineage(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(id="lead_existing", status="open")

    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, (tmp_path / "exports").as_uri()],
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
    assert report["lineage"] == {"export_leads": "None", "export_ad_spend": "None"}
    assert report["loaded"] == []
    assert "airflow-provider-octanist" in report["providers"]
    assert "apache-airflow-providers-openlineage" not in report["providers"]
