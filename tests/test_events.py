"""leads_from_asset_events: every lead of the triggering events, each change once, whatever the batching."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_octanist.events import LEADS_EVENT_KIND, leads_from_asset_events


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
