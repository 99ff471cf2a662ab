"""
Wait for an Octanist lead to be won, then book its value.

The sensor runs deferrable: after one check it hands the waiting to the triggerer, so no worker
slot is held while the lead is being worked on. Trigger a run with the lead to watch::

    airflow dags trigger example_octanist_lead_won --conf '{"lead_id": "lead_abc123"}'

A lost lead fails the sensor at once (no retries), naming the lead, its status and lossReason.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_octanist.sensors.octanist import OctanistLeadStatusSensor

# Leads are won over days, so checking every few minutes is plenty; the demo and the tests set
# OCTANIST_EXAMPLE_POKE_SECONDS to a couple of seconds to watch a lead turn won right away.
POKE_SECONDS = float(os.environ.get("OCTANIST_EXAMPLE_POKE_SECONDS", "300"))

with DAG(
    dag_id="example_octanist_lead_won",
    description="Wait (deferred) until an Octanist lead is won, then book its value.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"lead_id": Param("lead_abc123", type="string", minLength=1, description="The lead to watch.")},
    tags=["octanist", "example"],
):
    lead_won = OctanistLeadStatusSensor(
        task_id="wait_for_lead_won",
        lead_id="{{ params.lead_id }}",
        deferrable=True,
        poke_interval=POKE_SECONDS,
        timeout=timedelta(days=30),
    )

    @task
    def book_revenue(lead: dict[str, Any]) -> dict[str, Any]:
        """Use the won lead downstream: here, a summary a finance system could take."""
        booking = {
            "lead_id": lead["id"],
            "value": lead.get("value"),
            "won_at": lead.get("updatedAt"),
            "source": lead.get("source"),
            "utm_campaign": lead.get("utm_campaign"),
        }
        print(f"Booking won lead {booking['lead_id']}: value {booking['value']} at {booking['won_at']}")
        return booking

    book_revenue(lead_won.output)
