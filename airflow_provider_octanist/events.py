"""
The payload of the events :class:`~airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger`
fires, both ways: :func:`lead_event_payload` builds one, :func:`leads_from_asset_events` reads them.

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

from airflow_provider_octanist._timestamps import cursor_timestamp, parse_timestamp, utc_now

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_octanist.types import Lead

__all__ = ["LEADS_EVENT_KIND", "LEADS_EVENT_VERSION", "lead_event_payload", "leads_from_asset_events"]

LEADS_EVENT_KIND = "octanist.leads"
"""The ``kind`` of every payload the lead event trigger fires; payloads without it are not ours."""

LEADS_EVENT_VERSION = 1
"""The payload layout version: ``{"kind", "version", "statuses", "polled_at", "leads": [lead, ...]}``."""

_EVENT_KEYS = frozenset({"extra", "payload", "from_trigger", "kind", "leads"})


def lead_event_payload(leads: Sequence[Mapping[str, Any]], statuses: Sequence[str]) -> dict[str, Any]:
    """
    The payload of one trigger event: every lead one poll found entering a watched status.

    :param leads: the leads as listed, each with ``previousStatus``, in the order they changed.
    :param statuses: the statuses the watcher reports entries into.
    """
    return {
        "kind": LEADS_EVENT_KIND,
        "version": LEADS_EVENT_VERSION,
        "statuses": list(statuses),
        "polled_at": cursor_timestamp(utc_now()),
        "leads": list(leads),
    }


REDELIVERY_REACH = 100
"""Events of an asset, stored before a run's own, in which an earlier carrier of a change is looked for."""


def leads_from_asset_events(events: Any, *, inlet_events: Any = None) -> list[Lead]:
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
    change reached through several events of this run (an asset and an alias pointing at it) is
    returned once; a lead that entered a status twice (two different ``updatedAt``) is returned
    twice, as it should be.

    **Each change once across runs**, with ``inlet_events``: the task's ``inlet_events`` (the task
    lists the watched asset in ``inlets``), or any mapping from an asset to its events, oldest
    first, each with ``timestamp`` and ``extra``. A change that an earlier event of the same asset
    already carried is left out: a triggerer that died after Airflow stored a poll's event and
    before the watcher stored its position reports that poll's changes again, in a later event,
    and only the run that consumed the first one gets them. The earlier carrier is looked for among
    the :data:`REDELIVERY_REACH` events of the asset stored before this run's last event (more
    than a redelivery can reach: the watcher stores its position after every poll, so a
    redelivered change's first carrier is among the last events it stored), so a busy asset costs
    one bounded read per asset.

    :param events: the triggering events, in any of the shapes above.
    :param inlet_events: the task's ``inlet_events``, to leave out changes earlier runs received.
    :return: the leads as plain dicts (copies: changing them changes nothing else), sorted by
        ``updatedAt`` then ``id``. Each lead is the lead object as Octanist listed it, plus
        ``previousStatus`` (the watched status it left, or ``None``).
    :raises TypeError: for input that is not asset events (e.g. ``None``, a string, a number, a
        dict that is none of the shapes above).
    :raises ValueError: for an Octanist payload whose ``leads`` are not lead objects with an ``id``;
        with ``inlet_events``, for events that do not say when they were stored or of which asset.
    """
    carriers = [c for c in _carriers(events) if c.leads]
    if inlet_events is not None:
        _leave_out_earlier_carried(carriers, inlet_events)
    seen: set[tuple[str, str]] = set()
    leads: list[Lead] = []
    for carrier in carriers:
        for lead in carrier.leads:
            change = _change_of(lead)
            if change not in seen and change not in carrier.carried_before:
                seen.add(change)
                leads.append(cast("Lead", dict(lead)))
    leads.sort(key=_change_order)
    return leads


class _Carrier:
    """One Octanist event of a run: its leads, when and on which asset it was stored, if known."""

    __slots__ = ("asset", "carried_before", "leads", "timestamp")

    def __init__(self, event: Any, asset: Any = None) -> None:
        self.leads = _leads_of(_payload_of(event))
        self.asset = asset if asset is not None else _field(event, "asset")
        self.timestamp = _moment(_field(event, "timestamp"))
        self.carried_before: frozenset[tuple[str, str]] = frozenset()
        """Changes of this event an earlier event of its asset carried (left out)."""


def _carriers(events: Any) -> list[_Carrier]:
    """Every event inside ``events`` (whatever its shape) with the asset it was given under."""
    if events is None or isinstance(events, (str, bytes, bytearray)):
        raise TypeError(
            f"leads_from_asset_events() takes asset events (e.g. triggering_asset_events), "
            f"got {type(events).__name__}: {events!r:.80}."
        )
    if isinstance(events, Mapping):
        if _is_event_dict(events):
            return [_Carrier(events)]
        if all(_is_event_list(value) for value in events.values()):
            # A mapping of assets (or URIs) to their events: triggering_asset_events as a whole.
            return [_Carrier(event, asset) for asset, value in events.items() for event in value]
        raise TypeError(
            "leads_from_asset_events() got a mapping that is neither an asset event "
            f"(keys such as 'extra' or 'payload') nor a mapping of assets to event lists: keys "
            f"{sorted(map(str, events))[:8]}."
        )
    if hasattr(events, "extra"):
        return [_Carrier(events)]
    if isinstance(events, Iterable):
        return [_Carrier(event) for event in events]
    raise TypeError(
        f"leads_from_asset_events() takes asset events (e.g. triggering_asset_events), "
        f"got {type(events).__name__}."
    )


def _leave_out_earlier_carried(carriers: list[_Carrier], inlet_events: Any) -> None:
    """Mark, on each carrier, the changes an earlier event of its asset carried (see the function)."""
    if not isinstance(inlet_events, Mapping):
        raise TypeError(
            "leads_from_asset_events(inlet_events=...) takes the task's inlet_events (a mapping of "
            f"assets to their events), got {type(inlet_events).__name__}."
        )
    inlets = list(inlet_events)
    for carrier in carriers:
        if carrier.timestamp is None:
            raise ValueError(
                "leads_from_asset_events(inlet_events=...) needs events that say when they were stored "
                "('timestamp'), as Airflow's triggering_asset_events do."
            )
        if carrier.asset is None and len(inlets) == 1:
            carrier.asset = inlets[0]
    for inlet in inlets:
        mine = [c for c in carriers if c.asset is not None and _same_asset(c.asset, inlet)]
        if not mine:
            continue
        last = max(cast("datetime", c.timestamp) for c in mine)
        history = _history(inlet_events[inlet], last, len(mine) + REDELIVERY_REACH)
        for carrier in mine:
            stamp = cast("datetime", carrier.timestamp)
            carrier.carried_before = frozenset(
                _change_of(lead) for at, leads in history if at < stamp for lead in leads
            )
    unplaced = [c for c in carriers if c.asset is None or not any(_same_asset(c.asset, i) for i in inlets)]
    if unplaced:
        raise ValueError(
            "leads_from_asset_events(inlet_events=...) got Octanist events of an asset the task does not "
            "list in its inlets: add the watched asset to the task's inlets (or pass "
            "triggering_asset_events whole, so each event's asset is known)."
        )


def _history(accessor: Any, before: datetime, limit: int) -> list[tuple[datetime, list[dict[str, Any]]]]:
    """The Octanist events of one asset stored up to ``before``: the latest ``limit``, bounded."""
    if all(hasattr(accessor, name) for name in ("before", "ascending", "limit")):
        # Airflow 3's accessor: one request to the API server, newest first, at most ``limit``.
        events = list(accessor.before(before.isoformat()).ascending(False).limit(limit))
    else:
        events = [e for e in accessor if (_moment(_field(e, "timestamp")) or before) <= before][-limit:]
    history = []
    for event in events:
        at = _moment(_field(event, "timestamp"))
        leads = _leads_of(_payload_of(event))
        if at is not None and leads:
            history.append((at, leads))
    return history


def _same_asset(a: Any, b: Any) -> bool:
    """Whether two references (assets, asset references, names or URIs) name one asset."""
    if a is b or a == b:
        return True
    name_a, uri_a = _name_and_uri(a)
    name_b, uri_b = _name_and_uri(b)
    if name_a is not None and name_b is not None:
        return bool(name_a == name_b)
    return uri_a is not None and uri_a == uri_b


def _name_and_uri(asset: Any) -> tuple[Any, Any]:
    if isinstance(asset, str):
        return asset, asset
    return _field(asset, "name"), _field(asset, "uri")


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return parse_timestamp(value)


def _change_of(lead: Mapping[str, Any]) -> tuple[str, str]:
    return str(lead["id"]), str(lead.get("updatedAt"))


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
