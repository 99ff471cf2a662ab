"""
Walk a lead through its life in Octanist: create it, qualify it, mark it won, read it back.

Each step is one operator; the id of the created lead flows to the others through XCom. Marking
a lead won is harmless to repeat, so a retried ``mark_won`` never does damage. Creating is not:
a retried ``create_lead`` makes a second lead, which is why it has no retries here.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_octanist.operators.octanist import (
    OctanistCreateLeadOperator,
    OctanistGetLeadOperator,
    OctanistUpdateLeadOperator,
)

with DAG(
    dag_id="example_octanist_lead_lifecycle",
    description="Create an Octanist lead, qualify it, mark it won and read it back.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "name": Param("Grace Hopper", type="string"),
        "email": Param("grace@example.com", type="string"),
        "value": Param(2500, type="number", minimum=0, description="The deal's value once won."),
    },
    default_args={"retries": 2},
    tags=["octanist", "example"],
):
    create_lead = OctanistCreateLeadOperator(
        task_id="create_lead",
        name="{{ params.name }}",
        email="{{ params.email }}",
        note="Created by {{ dag.dag_id }} ({{ run_id }})",
        lead_fields={"utm_source": "airflow", "utm_campaign": "lifecycle-example"},
        retries=0,
    )

    qualify = OctanistUpdateLeadOperator(
        task_id="qualify",
        lead_id=create_lead.output,
        status="qualified",
        value="{{ params.value }}",
    )

    mark_won = OctanistUpdateLeadOperator(
        task_id="mark_won",
        lead_id=create_lead.output,
        status="won",
        value="{{ params.value }}",
        note="Won; booked by {{ dag.dag_id }}",
    )

    read_back = OctanistGetLeadOperator(task_id="read_back", lead_id=create_lead.output)

    qualify >> mark_won >> read_back
