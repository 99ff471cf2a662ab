"""
Export, once a day, every Octanist lead updated in the run's data interval, as JSON lines.

The list operator asks Octanist for leads with ``updatedAt`` in ``[data_interval_start,
data_interval_end)``, oldest first; consecutive runs cover consecutive days without gaps or overlaps.
A task then writes them to ``<export_dir>/leads-<day>.jsonl`` and returns a small summary.

The leads pass through XCom, which suits daily volumes of thousands; for much more, stream them
with ``OctanistHook().iter_leads(...)`` inside the writing task instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, get_current_context, task

from airflow_provider_octanist.operators.octanist import OctanistListLeadsOperator

try:  # Airflow 3
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2
    from airflow.timetables.interval import CronDataIntervalTimetable

DEFAULT_EXPORT_DIR = os.path.join(tempfile.gettempdir(), "octanist-exports")

with DAG(
    dag_id="example_octanist_daily_export",
    description="Daily JSON-lines export of the Octanist leads updated in the data interval.",
    # An explicit interval timetable: each run covers one whole UTC day, [start, end).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"export_dir": Param(DEFAULT_EXPORT_DIR, type="string", description="Where the files go.")},
    tags=["octanist", "example"],
):
    updated_leads = OctanistListLeadsOperator(
        task_id="list_updated_leads",
        updated_gte="{{ data_interval_start }}",
        updated_lt="{{ data_interval_end }}",
        sort="updatedAt:asc",
    )

    @task
    def write_json_lines(leads: list[dict[str, Any]]) -> dict[str, Any]:
        """Write one lead per line and return where, how many and how they stand."""
        context = get_current_context()
        # Named after the day the leads were updated: the interval's start, for scheduled and manual runs.
        day = context["data_interval_start"].strftime("%Y-%m-%d")
        path = Path(context["params"]["export_dir"]) / f"leads-{day}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for lead in leads:
                out.write(json.dumps(lead, sort_keys=True) + "\n")
        by_status = Counter(str(lead.get("status")) for lead in leads)
        return {"path": str(path), "count": len(leads), "by_status": dict(sorted(by_status.items()))}

    write_json_lines(updated_leads.output)
