"""
Consumer DAGs for the Postgres end-to-end scenarios, each written the way the README documents.

One DAG per scenario, each with its own asset, watcher and connection (``octanist_<scenario>``,
pointed at its own fake server), so the scenarios share one Airflow deployment without seeing each
other's leads. Each booking leaves a JSON marker in ``OCTANIST_SCENARIO_OUTPUT_DIR``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Asset, AssetWatcher, dag, get_current_context, task

from airflow_provider_octanist.events import leads_from_asset_events
from airflow_provider_octanist.sweep import lead_event_schedule, sweep_stranded_events
from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

POLL_SECONDS = float(os.environ.get("OCTANIST_SCENARIO_POLL_SECONDS", "2"))
BUSY_TASK_SECONDS = float(os.environ.get("OCTANIST_SCENARIO_BUSY_SECONDS", "10"))

SCENARIOS: dict[str, dict[str, Any]] = {
    # (a) bookings must not run in parallel, and each takes longer than the poll interval
    "busy": {"max_active_runs": 1, "book_seconds": BUSY_TASK_SECONDS},
    "scheduler_pause": {"max_active_runs": 16, "book_seconds": 0.0},
    "unpause": {"max_active_runs": 16, "book_seconds": 0.0},
    "failover": {"max_active_runs": 16, "book_seconds": 0.0},
    # (c) otherwise: a second DAG on the same asset keeps its watcher running during the pause
    "shared_unpause": {"max_active_runs": 16, "book_seconds": 0.0},
    "shared_unpause_peer": {"max_active_runs": 16, "book_seconds": 0.0, "asset_of": "shared_unpause"},
    # (e) a server that stores microseconds, prints milliseconds and serves 50 leads a page
    "server_habits": {"max_active_runs": 16, "book_seconds": 0.0},
    # (f) microsecond stamps under a millisecond clock three hours behind, 50 leads a page; the
    # watcher spelled MessageQueueTrigger(scheme="octanist")
    "server_quirks": {"max_active_runs": 16, "book_seconds": 0.0},
    # (g) a triggerer killed after Airflow stored an event, before the watcher stored its position
    "redelivery": {"max_active_runs": 16, "book_seconds": 0.0},
}


MESSAGE_QUEUE_SCENARIOS = ("server_quirks",)
"""Scenarios whose watcher is spelled MessageQueueTrigger(scheme="octanist", ...): the same trigger."""


def lead_won_asset(scenario: str) -> Asset:
    arguments: dict[str, Any] = {
        "statuses": ["won"],
        "octanist_conn_id": f"octanist_{scenario}",
        "poll_interval": POLL_SECONDS,
    }
    trigger: Any
    if scenario in MESSAGE_QUEUE_SCENARIOS:
        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        trigger = MessageQueueTrigger(scheme="octanist", **arguments)
    else:
        trigger = OctanistLeadEventTrigger(**arguments)
    return Asset(
        f"octanist_lead_won_{scenario}",
        watchers=[AssetWatcher(name=f"octanist_lead_won_{scenario}_watcher", trigger=trigger)],
    )


def consumer_dag(scenario: str, max_active_runs: int, book_seconds: float, asset_of: str = "") -> None:
    dag_id = f"octanist_scenario_{scenario}"
    lead_won = lead_won_asset(asset_of or scenario)

    @dag(
        dag_id=dag_id,
        schedule=lead_event_schedule(lead_won, dag_id=dag_id),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=max_active_runs,
    )
    def consumer() -> None:
        sweep_stranded_events()

        @task(inlets=[lead_won])
        def won_leads(
            *, triggering_asset_events: Any = None, inlet_events: Any = None
        ) -> list[dict[str, Any]]:
            # As the README writes it: with inlet_events, a change an earlier run got is left out.
            return leads_from_asset_events(triggering_asset_events, inlet_events=inlet_events)

        @task
        def book(lead: dict[str, Any]) -> None:
            started = time.time()
            context = get_current_context()
            time.sleep(book_seconds)
            marker = {
                "lead_id": lead["id"],
                "dag_id": context["dag"].dag_id,
                "run_id": context["run_id"],
                "map_index": context["ti"].map_index,
                "started": started,
            }
            out = Path(os.environ["OCTANIST_SCENARIO_OUTPUT_DIR"])
            name = f"{context['dag'].dag_id}.{lead['id']}.{started:.6f}.json"
            # Written whole, then renamed: the test reads the folder while bookings land.
            (out / f"{name}.part").write_text(json.dumps(marker), encoding="utf-8")
            (out / f"{name}.part").replace(out / name)

        book.expand(lead=won_leads())

    consumer()


for _scenario, _options in SCENARIOS.items():
    consumer_dag(_scenario, **_options)
