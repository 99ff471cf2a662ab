"""MessageQueueTrigger(scheme="octanist", ...) is OctanistLeadEventTrigger(...): one watcher, two names."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
from conftest import HAS_COMMON_MESSAGING

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Event-driven scheduling needs Airflow 3.0+.")


with_messaging = pytest.mark.skipif(
    not HAS_COMMON_MESSAGING,
    reason="MessageQueueTrigger comes with apache-airflow-providers-common-messaging.",
)

ARGUMENTS: list[dict[str, Any]] = [
    {"statuses": ["won"]},
    {"statuses": ["won", "lost"], "poll_interval": 30, "octanist_conn_id": "octanist_crm"},
    {"statuses": "won", "updated_since": "2026-01-01T00:00:00Z", "remember_for": 3600},
]


@with_messaging
@pytest.mark.parametrize("kwargs", ARGUMENTS, ids=["won", "two statuses", "a start point"])
def test_the_octanist_scheme_stores_exactly_the_lead_event_trigger(kwargs: dict[str, Any]) -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

    spelled = MessageQueueTrigger(scheme="octanist", **kwargs)
    assert spelled.serialize() == OctanistLeadEventTrigger(**kwargs).serialize()


@with_messaging
def test_a_bad_argument_through_the_queue_is_the_triggers_own_clear_error() -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    with pytest.raises(ValueError, match="status"):
        MessageQueueTrigger(scheme="octanist", statuses=["wonn"]).serialize()


def _watchers(serialized: Any) -> list[Any]:
    """Every asset watcher in a serialized DAG, wherever the version puts them."""
    found: list[Any] = []
    if isinstance(serialized, dict):
        for key, value in serialized.items():
            if key == "watchers" and isinstance(value, list):
                found.extend(value)
            else:
                found.extend(_watchers(value))
    elif isinstance(serialized, list):
        for value in serialized:
            found.extend(_watchers(value))
    return found


def _serialized_dag(trigger: Any) -> dict[str, Any]:
    from airflow.sdk import Asset, AssetWatcher, dag, task

    try:  # Airflow 3.3 renamed the serializer
        from airflow.serialization.serialized_objects import DagSerialization as Serializer
    except ImportError:
        from airflow.serialization.serialized_objects import SerializedDAG as Serializer  # type: ignore[no-redef]

    lead_won = Asset(
        "octanist_lead_won", watchers=[AssetWatcher(name="octanist_lead_won_watcher", trigger=trigger)]
    )

    @dag(dag_id="book_won_leads", schedule=[lead_won], start_date=datetime(2026, 1, 1), catchup=False)
    def book_won_leads() -> None:
        @task
        def book() -> None:
            pass

        book()

    return dict(Serializer.to_dict(book_won_leads()))


@with_messaging
def test_a_dag_watching_through_message_queue_trigger_serializes_the_octanist_watcher() -> None:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

    via_queue = _watchers(_serialized_dag(MessageQueueTrigger(scheme="octanist", statuses=["won"])))
    direct = _watchers(_serialized_dag(OctanistLeadEventTrigger(statuses=["won"])))
    assert via_queue == direct
    assert len(direct) == 1
    assert "airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger" in str(direct[0])


@pytest.mark.skipif(HAS_COMMON_MESSAGING, reason="What happens without common-messaging.")
def test_without_common_messaging_the_queue_module_is_an_optional_feature_airflow_skips() -> None:
    # Airflow's provider discovery treats "No module named 'airflow.providers...'" as an optional
    # feature that is not installed: the queue entry is skipped, quietly, and nothing else changes.
    with pytest.raises(ModuleNotFoundError, match=r"No module named 'airflow\.providers\.common\.messaging"):
        importlib.import_module("airflow_provider_octanist.queues.octanist")


def test_the_provider_info_registers_the_queue_provider() -> None:
    from airflow_provider_octanist import get_provider_info

    assert get_provider_info()["queues"] == [
        "airflow_provider_octanist.queues.octanist.OctanistMessageQueueProvider"
    ]
