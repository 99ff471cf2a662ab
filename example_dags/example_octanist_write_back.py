"""
Every day, mark the deals the warehouse closed that day as won in Octanist, with their amount.

``SqlToOctanistLeadsOperator`` runs one query on the warehouse connection and updates one lead per
row: the columns are named as the API names them (``email`` names the lead, ``status`` and
``value`` are the change). Up to eight updates are in flight at once; every row is accounted for in
the summary the task returns and in a report of one JSON line per row, and the task fails, naming
the first rows and their reasons, if any row was invalid, matched no lead, matched several leads
or failed. A state kept next to the reports remembers what was applied, so a run sends only what
changed, and sends the rows not applied again on the next runs.

The warehouse here is sqlite, so the example runs anywhere (``pip install
apache-airflow-providers-sqlite``); any database with an Airflow provider works the same way, with
its driver's parameter style in place of ``:day`` (``%(day)s`` for Postgres and MySQL):

    export AIRFLOW_CONN_WAREHOUSE='{"conn_type": "sqlite", "host": "/data/warehouse.db"}'

The table it reads: ``closed_deals(customer_email TEXT, amount NUMERIC, closed_on TEXT)``, one row
per deal won, ``closed_on`` as ``YYYY-MM-DD``.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

try:  # Airflow 3
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2
    from airflow.timetables.interval import CronDataIntervalTimetable

DEFAULT_REPORT_URL = (Path(tempfile.gettempdir()) / "octanist-write-back").as_uri()

with DAG(
    dag_id="example_octanist_write_back",
    description="Daily: the deals closed in the warehouse become won leads in Octanist, with their amount.",
    # Each run covers one whole UTC day, [start, end): the deals closed on the interval's start day.
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "report_url": Param(
            DEFAULT_REPORT_URL,
            type="string",
            description="Where the per-row reports go: a file://, s3://, gs://... URL.",
        )
    },
    tags=["octanist", "example"],
):
    SqlToOctanistLeadsOperator(
        task_id="mark_closed_deals_won",
        conn_id="warehouse",
        sql="""
            SELECT customer_email AS email, 'won' AS status, amount AS value
            FROM closed_deals
            WHERE closed_on = :day
        """,
        parameters={"day": "{{ data_interval_start | ds }}"},
        report_path="{{ params.report_url }}/write-back-{{ data_interval_start | ds }}.jsonl",
        # One state for every run of the task: a deal already marked won is not sent again, a
        # lead not created yet is tried again on the next days, and no note is ever sent twice.
        state_path="{{ params.report_url }}/write-back-state.json",
    )
