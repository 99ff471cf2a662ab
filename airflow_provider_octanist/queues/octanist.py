"""
``MessageQueueTrigger(scheme="octanist", ...)``: Octanist lead changes as a message queue.

Airflow's common-messaging provider gives event-driven DAGs one spelling for every queue (Kafka,
SQS, Redis...): ``MessageQueueTrigger(scheme=..., **kwargs)`` builds the trigger of the provider
registered for ``scheme`` with ``kwargs``, and stores that trigger, not itself. So::

    MessageQueueTrigger(scheme="octanist", statuses=["won"], poll_interval=60)

is ``OctanistLeadEventTrigger(statuses=["won"], poll_interval=60)``: the same serialized class path
and arguments, one watcher however it is spelled.

common-messaging imports every registered queue module whenever a DAG file imports
``MessageQueueTrigger``, so this module imports nothing of its own: the trigger class comes when
the trigger is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider

if TYPE_CHECKING:
    from airflow.triggers.base import BaseEventTrigger

__all__ = ["SCHEME", "OctanistMessageQueueProvider"]

SCHEME = "octanist"
"""The ``scheme`` of ``MessageQueueTrigger`` that means Octanist lead changes."""


class OctanistMessageQueueProvider(BaseMessageQueueProvider):  # type: ignore[misc]  # untyped base
    """Octanist lead changes for ``MessageQueueTrigger(scheme="octanist", **kwargs)``: see the module."""

    scheme = SCHEME

    def trigger_class(self) -> type[BaseEventTrigger]:
        """:class:`~airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger`."""
        from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

        return OctanistLeadEventTrigger
