"""leads_from_asset_events: every lead of the triggering events, each change once, whatever the batching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_octanist.events import (
    LEADS_EVENT_KIND,
    LEADS_EVENT_VERSION,
    lead_event_payload,
    leads_from_asset_events,
)


def lead(lead_id: str, updated_at: str, **fields: Any) -> dict[str, Any]:
    return {"id": lead_id, "status": "won", "updatedAt": updated_at, "previousStatus": None, **fields}


def payload(*leads: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": LEADS_EVENT_KIND,
        "version": 1,
        "statuses": ["won"],
        "polled_at": "2026-03-10T12:00:01.000Z",
        "leads": list(leads),
    }


@dataclass
class AssetEvent:
    """Shaped like what Airflow hands to tasks (``AssetEventDagRunReferenceResult``): ``.extra``."""

    extra: dict[str, Any]
    timestamp: str = "2026-03-10T12:00:01+00:00"
    source_aliases: list[Any] = field(default_factory=list)


def from_trigger(p: dict[str, Any]) -> AssetEvent:
    return AssetEvent(extra={"from_trigger": True, "payload": p})


A = lead("lead_a", "2026-03-10T12:00:00.000Z", value=100)
B = lead("lead_b", "2026-03-10T12:00:00.000Z", value=200)
C = lead("lead_c", "2026-03-10T11:59:59.500Z", value=300)


def ids(leads: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in leads]


def test_the_events_of_one_asset_give_every_lead_in_update_order() -> None:
    events = [from_trigger(payload(A, B)), from_trigger(payload(C))]
    assert ids(leads_from_asset_events(events)) == ["lead_c", "lead_a", "lead_b"]


def test_the_whole_triggering_asset_events_mapping_is_accepted() -> None:
    class Asset:  # mapping keys are assets, not strings
        def __init__(self, name: str) -> None:
            self.name = name

    won, other = Asset("octanist_lead_won"), Asset("orders")
    mapping = {won: [from_trigger(payload(A))], other: [AssetEvent(extra={"rows": 10})]}
    assert ids(leads_from_asset_events(mapping)) == ["lead_a"]


def test_the_airflow_2_mapping_of_uris_to_events_is_accepted() -> None:
    mapping = {"octanist://leads/won": [from_trigger(payload(A, B))]}
    assert ids(leads_from_asset_events(mapping)) == ["lead_a", "lead_b"]


def test_the_same_change_reached_twice_is_returned_once() -> None:
    # An asset and an alias both list the event; a restarted triggerer may send a batch again.
    again = lead("lead_a", A["updatedAt"], value=100)
    events = [from_trigger(payload(A, B)), from_trigger(payload(A)), from_trigger(payload(again))]
    assert ids(leads_from_asset_events(events)) == ["lead_a", "lead_b"]


def test_a_lead_that_entered_the_status_twice_is_returned_twice() -> None:
    later = lead("lead_a", "2026-03-12T09:00:00.000Z", value=150)
    assert [
        x["value"] for x in leads_from_asset_events([from_trigger(payload(later)), from_trigger(payload(A))])
    ] == [
        100,
        150,
    ]


def test_events_that_are_not_ours_are_skipped() -> None:
    events = [
        AssetEvent(extra={}),  # created by hand in the UI
        AssetEvent(extra={"rows": 10}),  # created by a task
        AssetEvent(extra={"from_trigger": True, "payload": {"kind": "kafka.message", "leads": [1]}}),
        AssetEvent(extra={"from_trigger": True, "payload": "text"}),
        from_trigger(payload(A)),
    ]
    assert ids(leads_from_asset_events(events)) == ["lead_a"]


def test_plain_dicts_in_every_shape_are_accepted() -> None:
    as_event = {"extra": {"from_trigger": True, "payload": payload(A)}}
    as_extra = {"from_trigger": True, "payload": payload(B)}
    as_payload = payload(C)
    assert ids(leads_from_asset_events([as_event, as_extra, as_payload])) == ["lead_c", "lead_a", "lead_b"]
    assert ids(leads_from_asset_events(as_payload)) == ["lead_c"]
    assert ids(leads_from_asset_events(from_trigger(payload(A)))) == ["lead_a"]


def test_the_leads_are_copies() -> None:
    p = payload(A)
    (copy,) = leads_from_asset_events([from_trigger(p)])
    copy["value"] = 0
    assert p["leads"][0]["value"] == 100


def test_no_events_give_no_leads() -> None:
    assert leads_from_asset_events([]) == []
    assert leads_from_asset_events({}) == []


@pytest.mark.parametrize(
    "nonsense",
    [None, "octanist", b"events", 42, {"dag_id": "x", "ti": object()}, [object()], [{"rows": 1}]],
    ids=["None", "str", "bytes", "int", "context-like dict", "object in list", "unknown dict in list"],
)
def test_nonsense_input_is_a_type_error(nonsense: Any) -> None:
    with pytest.raises(TypeError, match="leads_from_asset_events"):
        leads_from_asset_events(nonsense)


def test_a_broken_payload_of_ours_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="expected a list"):
        leads_from_asset_events([from_trigger({"kind": LEADS_EVENT_KIND, "leads": "lead_a"})])
    with pytest.raises(ValueError, match="not a lead with an id"):
        leads_from_asset_events([from_trigger({"kind": LEADS_EVENT_KIND, "leads": [{"status": "won"}]})])


def test_sweep_events_carry_no_leads_and_each_lead_still_comes_once() -> None:
    # A sweep run gets the stranded trigger events of its lead asset plus the sweep event itself.
    sweep_event = AssetEvent(extra={"kind": "octanist.event_sweep", "stranded_event_ids": [7]})
    events = {
        "octanist_lead_won": [from_trigger(payload(A)), from_trigger(payload(B)), from_trigger(payload(A))],
        "octanist-event-sweep/book_won_leads": [sweep_event],
    }
    assert [lead["id"] for lead in leads_from_asset_events(events)] == ["lead_a", "lead_b"]
    assert leads_from_asset_events([sweep_event]) == []
    assert leads_from_asset_events([sweep_event.extra]) == []


# -- each change once across runs: inlet_events ------------------------------------------------------


@dataclass
class StoredEvent:
    """Shaped like Airflow's events: ``.asset`` (name, uri), ``.timestamp``, ``.extra``."""

    asset: Any
    timestamp: str
    extra: dict[str, Any]


@dataclass(frozen=True)
class Ref:
    name: str
    uri: str


WON = Ref("octanist_lead_won", "octanist_lead_won")
ORDERS = Ref("orders", "orders")


def stored(asset: Ref, at: str, *leads: dict[str, Any]) -> StoredEvent:
    return StoredEvent(asset, at, {"from_trigger": True, "payload": payload(*leads)})


class History:
    """An asset's stored events behind Airflow's accessor API (``before``, ``ascending``, ``limit``)."""

    def __init__(self, *events: StoredEvent) -> None:
        self.events = list(events)
        self.asked: dict[str, Any] = {}

    def before(self, iso: str) -> History:
        self.asked["before"] = iso
        return self

    def ascending(self, ascending: bool = True) -> History:
        self.asked["ascending"] = ascending
        return self

    def limit(self, n: int) -> History:
        self.asked["limit"] = n
        return self

    def __iter__(self) -> Any:
        bound = self.asked["before"]
        chosen = [e for e in self.events if e.timestamp <= bound]
        chosen.sort(key=lambda e: e.timestamp, reverse=not self.asked["ascending"])
        return iter(chosen[: self.asked["limit"]])


FIRST = stored(WON, "2026-03-10T12:00:01+00:00", A, B)
REDELIVERED = stored(WON, "2026-03-10T12:00:31+00:00", A, B, C)  # after a triggerer crash: A, B again


def test_a_change_an_earlier_event_of_the_asset_carried_is_left_out_of_a_later_run() -> None:
    history = History(FIRST, REDELIVERED)
    later_run = {WON: [REDELIVERED]}
    assert ids(leads_from_asset_events(later_run, inlet_events={WON: history})) == ["lead_c"]


def test_the_run_that_consumed_the_first_carrier_keeps_its_changes() -> None:
    history = History(FIRST, REDELIVERED)
    assert ids(leads_from_asset_events({WON: [FIRST]}, inlet_events={WON: history})) == ["lead_a", "lead_b"]
    both = {WON: [FIRST, REDELIVERED]}  # one run consumed both: each change once
    assert ids(leads_from_asset_events(both, inlet_events={WON: History(FIRST, REDELIVERED)})) == [
        "lead_c",
        "lead_a",
        "lead_b",
    ]


def test_a_later_change_of_the_same_lead_is_a_new_change() -> None:
    again = stored(WON, "2026-03-10T13:00:00+00:00", lead("lead_a", "2026-03-10T12:59:00.000Z"))
    history = History(FIRST, again)
    assert ids(leads_from_asset_events({WON: [again]}, inlet_events={WON: history})) == ["lead_a"]


def test_events_of_other_producers_and_other_assets_do_not_hide_a_change() -> None:
    manual = StoredEvent(WON, "2026-03-10T12:00:00+00:00", {"rows": 3})  # a manual event, not ours
    other = stored(ORDERS, "2026-03-10T12:00:00+00:00", A)  # another asset carried lead_a
    history = History(manual, FIRST)
    inlets = {WON: history, ORDERS: History(other)}
    assert ids(leads_from_asset_events({WON: [FIRST]}, inlet_events=inlets)) == ["lead_a", "lead_b"]


def test_the_look_back_is_one_bounded_read_per_asset() -> None:
    history = History(FIRST, REDELIVERED)
    leads_from_asset_events({WON: [REDELIVERED]}, inlet_events={WON: history})
    assert history.asked == {"before": "2026-03-10T12:00:31+00:00", "ascending": False, "limit": 1 + 100}


def test_a_list_of_one_assets_events_takes_the_only_inlet() -> None:
    history = History(FIRST, REDELIVERED)
    events = [StoredEvent(None, REDELIVERED.timestamp, REDELIVERED.extra)]
    assert ids(leads_from_asset_events(events, inlet_events={WON: history})) == ["lead_c"]


def test_a_plain_mapping_of_events_oldest_first_is_accepted_as_inlet_events() -> None:
    assert ids(leads_from_asset_events({WON: [REDELIVERED]}, inlet_events={WON: [FIRST, REDELIVERED]})) == [
        "lead_c"
    ]


@pytest.mark.parametrize(
    ("events", "inlets", "error", "match"),
    [
        ([payload(A)], {WON: []}, ValueError, "when they were stored"),
        ({ORDERS: [stored(ORDERS, "2026-03-10T12:00:00+00:00", A)]}, {WON: []}, ValueError, "inlets"),
        ({WON: [FIRST]}, [FIRST], TypeError, "mapping of assets"),
    ],
    ids=["no timestamp", "an asset not in the inlets", "inlet events not a mapping"],
)
def test_inlet_events_that_cannot_place_a_change_are_a_clear_error(
    events: Any, inlets: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        leads_from_asset_events(events, inlet_events=inlets)


def test_a_built_payload_is_read_back_lead_for_lead() -> None:
    leads = [{"id": "a", "updatedAt": "2026-01-01T00:00:00.001Z", "status": "won", "previousStatus": None}]
    payload = lead_event_payload(leads, ["won"])
    assert set(payload) == {"kind", "version", "statuses", "polled_at", "leads"}
    assert (payload["kind"], payload["version"], payload["statuses"]) == (
        LEADS_EVENT_KIND,
        LEADS_EVENT_VERSION,
        ["won"],
    )
    assert leads_from_asset_events([payload]) == leads
