"""
Export, once a day, every Octanist lead updated in the run's data interval, to one file per day.

``OctanistLeadsToObjectStorageOperator`` streams the leads with ``updatedAt`` in
``[data_interval_start, data_interval_end)`` to ``<export_url>/leads-<day>.jsonl``, page by page, and
returns a summary (path, rows, bytes, leads by status). The bounds are ``updated_gte`` (at or after
the start) and ``updated_lt`` (before the end), so consecutive runs cover consecutive days with no
gap and no overlap, and a backfill of a past week writes one file per day:

    airflow backfill create --dag-id example_octanist_daily_export \\
        --from-date 2026-03-02 --to-date 2026-03-08

The file appears only once complete, and a retry writes it whole again. ``export_url`` can be any
store Airflow's ObjectStoragePath reaches: ``s3://bucket/octanist`` (with ``storage_conn_id``),
``gs://...``, or a local ``file://`` directory (the default, for a first try).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_octanist.transfers.object_storage import OctanistLeadsToObjectStorageOperator

try:  # Airflow 3
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2
    from airflow.timetables.interval import CronDataIntervalTimetable

DEFAULT_EXPORT_URL = (Path(tempfile.gettempdir()) / "octanist-exports").as_uri()

with DAG(
    dag_id="example_octanist_daily_export",
    description="Daily JSON Lines export of the Octanist leads updated in the data interval.",
    # An explicit interval timetable: each run covers one whole UTC day, [start, end).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "export_url": Param(
            DEFAULT_EXPORT_URL,
            type="string",
            description="Where the files go: a file://, s3://, gs://... URL.",
        )
    },
    tags=["octanist", "example"],
):
    OctanistLeadsToObjectStorageOperator(
        task_id="export_updated_leads",
        # Named after the day the leads were updated: the interval's start, for scheduled and manual runs.
        path="{{ params.export_url }}/leads-{{ data_interval_start | ds }}.jsonl",
        updated_gte="{{ data_interval_start }}",
        updated_lt="{{ data_interval_end }}",
        sort="updatedAt:asc",
    )
