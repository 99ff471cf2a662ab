"""
Read the leads that :class:`~airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger` reported.

The trigger fires one asset event per poll that found leads entering a watched status; Airflow
may fold several such events into one DAG run (and, on some versions, deliver an event in a later
run than expected). :func:`leads_from_asset_events` turns whatever a run received back into one
flat list of leads, each lead change once, in the order the changes happened::

    @task
    def won_leads(*, triggering_asset_events=None):
        return leads_from_asset_events(triggering_asset_events)

This module is imported by DAG files: it must stay cheap (standard library only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_octanist._timestamps import parse_timestamp

if TYPE_CHECKING:
    from airflow_provider_octanist.types import Lead

__all__ = ["LEADS_EVENT_KIND", "LEADS_EVENT_VERSION", "leads_from_asset_events"]

LEADS_EVENT_KIND = "octanist.leads"
"""The ``kind`` of every payload the lead event trigger fires; payloads without it are not ours."""

LEADS_EVENT_VERSION = 1
"""The payload layout version: ``{"kind", "version", "statuses", "polled_at", "leads": [lead, ...]}``."""

_EVENT_KEYS = frozenset({"extra", "payload", "from_trigger", "kind", "leads"})


def leads_from_asset_events(events: Any) -> list[Lead]:
    """
    Return every lead carried by Octanist lead events, each lead change once, oldest change first.

    Accepts what DAG code has at hand:

    - ``triggering_asset_events`` as a whole (a mapping of assets to their event lists; the
      Airflow 2 ``triggering_dataset_events`` mapping of URIs to lists works too);
    - ``triggering_asset_events[asset]``, or any other list/tuple/iterable of asset events;
    - one asset event.

    An asset event is an object with an ``extra`` attribute (what Airflow hands to tasks), or a
    plain dict in one of three shapes: the event (``{"extra": {...}}``), its ``extra``
    (``{"from_trigger": True, "payload": {...}}``) or the trigger payload itself
    (``{"kind": "octanist.leads", "leads": [...]}``).

    **Which events count**: an event is ours when its payload is a mapping whose ``kind`` is
    ``"octanist.leads"``. Every other event on the asset (created by a task, by hand in the UI, or
    by another watcher) is skipped without error, so the asset can have several producers.

    **Each change once**: a lead change is identified by the lead's ``id`` and ``updatedAt``. The same
    change reached through several events (an asset and an alias pointing at it, or an event
    re-delivered after a triggerer restart) is returned once; a lead that entered a status twice (two
    different ``updatedAt``) is returned twice, as it should be.

    :param events: the triggering events, in any of the shapes above.
    :return: the leads as plain dicts (copies: changing them changes nothing else), sorted by
        ``updatedAt`` then ``id``. Each lead is the lead object as Octanist listed it, plus
        ``previousStatus`` (the watched status it left, or ``None``).
    :raises TypeError: for input that is not asset events (e.g. ``None``, a string, a number, a
        dict that is none of the shapes above).
    :raises ValueError: for an Octanist payload whose ``leads`` are not lead objects with an ``id``.
    """
    seen: set[tuple[str, str]] = set()
    leads: list[Lead] = []
    for payload in _payloads(events):
        for lead in _leads_of(payload):
            change = (lead["id"], str(lead.get("updatedAt")))
            if change not in seen:
                seen.add(change)
                leads.append(cast("Lead", dict(lead)))
    leads.sort(key=_change_order)
    return leads


def _payloads(events: Any) -> Iterable[Any]:
    """Every trigger payload inside ``events`` (whatever its shape), ours or not."""
    if events is None or isinstance(events, (str, bytes, bytearray)):
        raise TypeError(
            f"leads_from_asset_events() takes asset events (e.g. triggering_asset_events), "
            f"got {type(events).__name__}: {events!r:.80}."
        )
    if isinstance(events, Mapping):
        if _is_event_dict(events):
            return [_payload_of(events)]
        if all(_is_event_list(value) for value in events.values()):
            # A mapping of assets (or URIs) to their events: triggering_asset_events as a whole.
            return [_payload_of(event) for value in events.values() for event in value]
        raise TypeError(
            "leads_from_asset_events() got a mapping that is neither an asset event "
            f"(keys such as 'extra' or 'payload') nor a mapping of assets to event lists: keys "
            f"{sorted(map(str, events))[:8]}."
        )
    if hasattr(events, "extra"):
        return [_payload_of(events)]
    if isinstance(events, Iterable):
        return [_payload_of(event) for event in events]
    raise TypeError(
        f"leads_from_asset_events() takes asset events (e.g. triggering_asset_events), "
        f"got {type(events).__name__}."
    )


def _is_event_dict(value: Mapping[Any, Any]) -> bool:
    return any(isinstance(key, str) and key in _EVENT_KEYS for key in value)


def _is_event_list(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, bytearray, Mapping))


def _payload_of(event: Any) -> Any:
    """The trigger payload of one asset event, or ``None`` when it carries none."""
    if isinstance(event, Mapping):
        if not _is_event_dict(event):
            raise TypeError(
                "leads_from_asset_events() got a dict that is not an asset event: expected one with "
                f"'extra', 'payload' or 'kind', got keys {sorted(map(str, event))[:8]}."
            )
        if "kind" in event or "leads" in event:
            return event
        if "payload" in event:
            return event["payload"]
        extra = event.get("extra")
    elif hasattr(event, "extra"):
        extra = event.extra
    else:
        raise TypeError(
            f"leads_from_asset_events() got {type(event).__name__} where an asset event was expected "
            "(an object with .extra, or a dict)."
        )
    return extra.get("payload") if isinstance(extra, Mapping) else None


def _leads_of(payload: Any) -> list[dict[str, Any]]:
    """The leads of an Octanist payload; ``[]`` for a payload that is not ours."""
    if not isinstance(payload, Mapping) or payload.get("kind") != LEADS_EVENT_KIND:
        return []
    leads = payload.get("leads")
    if not isinstance(leads, list):
        raise ValueError(
            f"An Octanist lead event carries 'leads' of type {type(leads).__name__}, expected a list."
        )
    for lead in leads:
        if not isinstance(lead, Mapping) or not isinstance(lead.get("id"), str) or not lead["id"]:
            raise ValueError(
                f"An Octanist lead event carries an entry that is not a lead with an id: {lead!r:.120}"
            )
    return leads


def _change_order(lead: Mapping[str, Any]) -> tuple[datetime, str]:
    return parse_timestamp(lead.get("updatedAt")) or _EARLIEST, str(lead["id"])


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
