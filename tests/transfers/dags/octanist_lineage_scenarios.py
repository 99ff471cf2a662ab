"""
One DAG, one ``airflow dags test``: every task that moves Octanist data, for its OpenLineage events.

Two TaskFlow tasks call the hook directly, one creating a lead and one reading leads, and report
nothing of their own; then both exports write to ``OCTANIST_LINEAGE_EXPORT_URL``, and both write-backs
update leads from ``OCTANIST_LINEAGE_OUTCOMES_URL`` and from the ``outcomes`` table of the
``warehouse`` connection (SQLite), first for real, then as dry runs. The tasks run one after
another because ``airflow dags test`` runs them all in one process, whose hook lineage collector is
never reset: each task's event then carries what it and the tasks before it reported.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_octanist.hooks.octanist import OctanistHook
from airflow_provider_octanist.transfers.object_storage import (
    ObjectStorageToOctanistLeadsOperator,
    OctanistAdSpendToObjectStorageOperator,
    OctanistLeadsToObjectStorageOperator,
)
from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

EXPORT_URL = os.environ.get("OCTANIST_LINEAGE_EXPORT_URL", "file:///tmp/octanist-lineage")
OUTCOMES_URL = os.environ.get("OCTANIST_LINEAGE_OUTCOMES_URL", "file:///tmp/octanist-lineage/outcomes.jsonl")

with DAG(dag_id="octanist_lineage_scenarios", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    export_leads = OctanistLeadsToObjectStorageOperator(
        task_id="export_leads", path=f"{EXPORT_URL}/leads.jsonl", page_size=2
    )
    export_ad_spend = OctanistAdSpendToObjectStorageOperator(
        task_id="export_ad_spend",
        path=f"{EXPORT_URL}/ad-spend.jsonl",
        start_day="2026-03-01",
        end_day="2026-03-03",
    )

    @task
    def count_won_leads() -> int:
        return len(OctanistHook().list_leads(status="won", page_size=1))

    @task
    def create_a_lead() -> str:
        return str(OctanistHook().create_lead(name="Lineage", email="lineage@example.com")["id"])

    outcomes_from_a_file = ObjectStorageToOctanistLeadsOperator(
        task_id="outcomes_from_a_file", path=OUTCOMES_URL
    )
    outcomes_from_sql = SqlToOctanistLeadsOperator(
        task_id="outcomes_from_sql", conn_id="warehouse", sql="SELECT id, status, value FROM outcomes"
    )
    outcomes_from_a_file_dry_run = ObjectStorageToOctanistLeadsOperator(
        task_id="outcomes_from_a_file_dry_run", path=OUTCOMES_URL, dry_run=True
    )
    outcomes_from_sql_dry_run = SqlToOctanistLeadsOperator(
        task_id="outcomes_from_sql_dry_run",
        conn_id="warehouse",
        sql="SELECT id, status, value FROM outcomes",
        dry_run=True,
    )

    (
        create_a_lead()
        >> count_won_leads()
        >> export_leads
        >> export_ad_spend
        >> outcomes_from_a_file
        >> outcomes_from_sql
        >> outcomes_from_a_file_dry_run
        >> outcomes_from_sql_dry_run
    )
