"""
Whether this Airflow can share one lead poll among several watchers (shared streams in ack mode),
and which watchers share one: the gate in front of ``shared_poll``, cheap to import everywhere.
"""

from __future__ import annotations

import functools
import inspect


@functools.cache
def ack_streams_supported() -> bool:
    """
    Whether this Airflow shares streams in ack mode the way this provider relies on (3.3.2's design).

    That design hands ``SharedStreamProducer.advance()`` batches of events whose trigger events every
    subscriber has had confirmed *stored in the metadata database*. Earlier shapes of the API (or
    none at all) make the trigger fall back to its own poll loop.
    """
    try:
        from airflow.triggers import shared_stream
        from airflow.triggers.base import BaseEventTrigger
    except ImportError:
        return False
    names = (
        "SharedStreamManager",
        "SharedStreamProducer",
        "AdvanceItem",
        "AdvanceOutcome",
        "reject_shared_stream_event",
    )
    if not all(hasattr(shared_stream, name) for name in names):
        return False
    if not hasattr(shared_stream.SharedStreamManager, "bind_pending_event"):
        return False
    if not hasattr(BaseEventTrigger, "create_shared_stream_producer"):
        return False
    parameters = list(inspect.signature(shared_stream.SharedStreamProducer.advance).parameters)
    return parameters == ["self", "batch"]


def shared_key(octanist_conn_id: str, poll_interval: float) -> tuple[str, str, float]:
    """The shared-stream key: watchers of one connection with one poll interval share a poll."""
    return ("airflow_provider_octanist.lead_changes", octanist_conn_id, poll_interval)
