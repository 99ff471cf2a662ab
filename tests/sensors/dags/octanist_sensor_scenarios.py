"""
One DAG, one ``airflow dags test``: every way OctanistLeadStatusSensor can end, side by side.

The tasks are independent; the test flips the leads on the fake server while they wait and then
reads each task's state, try number and XCom from the metadata database. Every task has
``retries=3`` with a short delay, so a failure that Airflow would retry shows up as a second try.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_octanist.sensors.octanist import OctanistLeadStatusSensor

WAIT = {"poke_interval": 0.5, "timeout": 120}

with DAG(
    dag_id="octanist_sensor_scenarios",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=1)},
    params={"deferred_lead": "lead_defer_flip"},
):
    OctanistLeadStatusSensor(task_id="poke_until_won", lead_id="lead_poke_flip", mode="poke", **WAIT)
    OctanistLeadStatusSensor(
        task_id="reschedule_until_qualified",
        lead_id="lead_reschedule_flip",
        mode="reschedule",
        target_statuses=("qualified", "won"),
        **WAIT,
    )
    OctanistLeadStatusSensor(
        task_id="deferred_until_won", lead_id="{{ params.deferred_lead }}", deferrable=True, **WAIT
    )
    OctanistLeadStatusSensor(task_id="deferred_then_lost", lead_id="lead_defer_lost", deferrable=True, **WAIT)
    OctanistLeadStatusSensor(task_id="already_lost", lead_id="lead_lost", **WAIT)
    OctanistLeadStatusSensor(task_id="lost_soft_fail", lead_id="lead_lost", soft_fail=True, **WAIT)
    OctanistLeadStatusSensor(task_id="unknown_lead", lead_id="lead_does_not_exist", **WAIT)
    # soft_fail skips outcomes, never errors: a rejected key fails in every mode, and so does an
    # outage that the trigger reports after the sensor deferred.
    for mode in ("poke", "reschedule"):
        OctanistLeadStatusSensor(
            task_id=f"rejected_key_soft_fail_{mode}",
            lead_id="lead_lost",
            octanist_conn_id="octanist_rejected",
            mode=mode,
            soft_fail=True,
            retries=0,
            **WAIT,
        )
    OctanistLeadStatusSensor(
        task_id="rejected_key_soft_fail_deferred",
        lead_id="lead_lost",
        octanist_conn_id="octanist_rejected",
        deferrable=True,
        soft_fail=True,
        retries=0,
        **WAIT,
    )
    OctanistLeadStatusSensor(
        task_id="outage_soft_fail_deferred",
        lead_id="lead_outage",
        octanist_conn_id="octanist_outage",
        deferrable=True,
        soft_fail=True,
        max_consecutive_errors=1,
        retries=0,
        **WAIT,
    )
