"""
Start a DAG run the moment Octanist leads are won: one mapped task instance per won lead.

``OctanistLeadEventTrigger`` watches Octanist from the triggerer (no worker slot is held; one list
request per poll when nothing changed) and fires an asset event for each poll that found leads
turning won. The DAG is scheduled on that asset. Its first task reads every lead the run received
with ``leads_from_asset_events`` (Airflow may put several events into one run; with the asset as
the task's inlet, a change an earlier run received is left out, so each win is booked by one run);
the second task is mapped over them, so each won lead gets its own task instance, retries and log.

The schedule also names the DAG's own sweep asset (``lead_event_schedule``), and
``sweep_stranded_events`` adds a short task that releases any event Airflow 3.0-3.3 left unconsumed
(the DAG was busy at ``max_active_runs``, or the scheduler paused): it emits one event on the sweep
asset, which starts one run for them. When nothing was stranded, it is skipped.

Needs Airflow 3.0+ (``AssetWatcher``). For demos and tests:

- ``OCTANIST_EXAMPLE_POLL_SECONDS``: seconds between polls (default 60);
- ``OCTANIST_EXAMPLE_OUTPUT_DIR``: when set, each booked lead also leaves a JSON file there.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_octanist.events import leads_from_asset_events
from airflow_provider_octanist.sweep import lead_event_schedule, sweep_stranded_events
from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

POLL_SECONDS = float(os.environ.get("OCTANIST_EXAMPLE_POLL_SECONDS", "60"))
DAG_ID = "example_octanist_lead_won_event"

# Event-driven scheduling (Asset watchers) exists from Airflow 3.0 on. On Airflow 2 this file
# defines no DAG at all, rather than a DAG that would never run.
if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

    octanist_lead_won = Asset(
        "octanist_lead_won",
        watchers=[
            AssetWatcher(
                name="octanist_lead_won_watcher",
                trigger=OctanistLeadEventTrigger(statuses=("won",), poll_interval=POLL_SECONDS),
            )
        ],
    )

    @dag(
        dag_id=DAG_ID,
        description="Book every Octanist lead the moment it is won (event-driven, one task per lead).",
        schedule=lead_event_schedule(octanist_lead_won, dag_id=DAG_ID),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["octanist", "example"],
    )
    def example_octanist_lead_won_event() -> None:
        sweep_stranded_events()

        @task(inlets=[octanist_lead_won])
        def won_leads(
            *, triggering_asset_events: Any = None, inlet_events: Any = None
        ) -> list[dict[str, Any]]:
            """Every lead this run was started for, each lead change once, oldest first.

            With the watched asset as an inlet, a change an earlier run already received (redelivered
            after a triggerer died between storing an event and storing its position) is left out.
            """
            leads = leads_from_asset_events(triggering_asset_events, inlet_events=inlet_events)
            print(f"This run books {len(leads)} won lead(s): {', '.join(lead['id'] for lead in leads)}")
            # A mapped task takes at most [core] max_map_length (default 1024) items per run.
            return leads

        @task(retries=3, retry_delay=timedelta(seconds=30), map_index_template="{{ lead_id }}")
        def book_won_lead(lead: dict[str, Any]) -> dict[str, Any]:
            """Do something with one won lead: here, log it and hand a booking to a finance system."""
            context = get_current_context()
            context["lead_id"] = lead["id"]  # type: ignore[typeddict-unknown-key] # names the map index in the UI
            booking = {
                "lead_id": lead["id"],
                "value": lead.get("value"),
                "currency": lead.get("currency"),
                "won_at": lead.get("updatedAt"),
                "previous_status": lead.get("previousStatus"),
                "gclid": lead.get("gclid"),
                "run_id": context["run_id"],
                "map_index": context["ti"].map_index,
            }
            print(
                f"Lead {booking['lead_id']} won: value {booking['value']} {booking['currency'] or ''} "
                f"at {booking['won_at']}"
            )
            output_dir = os.environ.get("OCTANIST_EXAMPLE_OUTPUT_DIR")
            if output_dir:
                name = re.sub(
                    r"[^A-Za-z0-9_.-]", "_", f"{lead['id']}.{booking['run_id']}.{booking['map_index']}"
                )
                out = Path(output_dir)
                out.mkdir(parents=True, exist_ok=True)
                # Written whole, then renamed: whoever reads the folder never sees half a booking.
                (out / f"{name}.part").write_text(json.dumps(booking), encoding="utf-8")
                (out / f"{name}.part").replace(out / f"{name}.json")
            return booking

        book_won_lead.expand(lead=won_leads())

    example_octanist_lead_won_event()
