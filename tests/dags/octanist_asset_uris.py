"""
A DAG as 0.1.0 let its authors write it: scheduled on an asset named ``octanist://leads/won``, a URI
of the author's own naming, not a lineage name, watched by ``OctanistLeadEventTrigger`` on Airflow 3
(Airflow 2 has no watchers: there the DAG waits for the dataset alone).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Asset, task
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

ASSET_URI = "octanist://leads/won"

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import AssetWatcher

    leads_won = Asset(
        ASSET_URI,
        watchers=[
            AssetWatcher(name="leads_won_watcher", trigger=OctanistLeadEventTrigger(statuses=("won",)))
        ],
    )
else:
    leads_won = Asset(ASSET_URI)

with DAG(dag_id="octanist_asset_uris", schedule=leads_won, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def book() -> None:
        """Nothing to do: the DAG is here to be parsed."""

    book()
