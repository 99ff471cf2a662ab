"""
The fake's leads and clock, seeded and changed from Python (``_store``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_octanist.testing import FakeOctanistServer

from .helpers import KEY, TIMESTAMP_RE, call, list_ids, parse, wait_until


def test_add_lead_fills_in_the_api_defaults(server: FakeOctanistServer) -> None:
    lead = server.add_lead(name="Ada")
    assert re.match(r"^lead_[0-9a-f]{12}$", lead["id"])
    assert (lead["status"], lead["qualifiedAt"], lead["value"], lead["lossReason"]) == (
        "open",
        None,
        None,
        None,
    )
    assert TIMESTAMP_RE.match(lead["createdAt"])
    assert lead["updatedAt"] == lead["createdAt"]
    assert parse(lead["expiresAt"]) - parse(lead["createdAt"]) == timedelta(days=90)
    assert lead == server.lead(lead["id"])


def test_add_lead_accepts_datetimes_iso_strings_and_custom_objects(server: FakeOctanistServer) -> None:
    lead = server.add_lead(
        id="lead_x",
        status="won",
        createdAt=datetime(2026, 1, 15, 10, 30, tzinfo=timezone.utc),
        updatedAt="2026-01-16T11:30:00+01:00",
        custom={"company": "Acme Inc"},
        value=1200,
    )
    assert lead["createdAt"] == "2026-01-15T10:30:00.000Z"
    assert lead["updatedAt"] == "2026-01-16T10:30:00.000Z"
    assert lead["expiresAt"] == "2026-04-15T10:30:00.000Z"
    assert lead["custom"] == '{"company":"Acme Inc"}'
    assert (lead["status"], lead["value"]) == ("won", 1200)


def test_add_lead_as_qualified_stamps_qualified_at(server: FakeOctanistServer) -> None:
    lead = server.add_lead(status="qualified")
    assert lead["qualifiedAt"] == lead["updatedAt"]


def test_add_lead_rejects_unknown_fields_and_duplicate_ids(server: FakeOctanistServer) -> None:
    with pytest.raises(TypeError, match="updated_at"):
        server.add_lead(updated_at="2026-01-01")
    server.add_lead(id="lead_1")
    with pytest.raises(ValueError, match="already exists"):
        server.add_lead(id="lead_1")
    with pytest.raises(ValueError, match="Unknown lead status"):
        server.add_lead(status="pending")


def test_add_leads_returns_copies_in_insertion_order(server: FakeOctanistServer) -> None:
    added = server.add_leads(3, source="gtm")
    assert [lead["id"] for lead in server.leads] == [lead["id"] for lead in added]
    assert {lead["source"] for lead in added} == {"gtm"}
    added[0]["status"] = "won"
    assert server.lead(added[0]["id"])["status"] == "open"


def test_lead_raises_key_error_for_unknown_id(server: FakeOctanistServer) -> None:
    with pytest.raises(KeyError, match="lead_nope"):
        server.lead("lead_nope")


def test_set_status_qualified_stamps_qualified_at(server: FakeOctanistServer) -> None:
    lead = server.add_lead()
    qualified = server.set_status(lead["id"], "qualified")
    assert qualified["qualifiedAt"] == qualified["updatedAt"]
    assert qualified["updatedAt"] > lead["updatedAt"]


def test_set_status_lost_keeps_the_loss_reason_and_won_clears_it(server: FakeOctanistServer) -> None:
    lead = server.add_lead()
    assert server.set_status(lead["id"], "lost", loss_reason="Too expensive")["lossReason"] == "Too expensive"
    won = server.set_status(lead["id"], "win", value=99.5)
    assert (won["status"], won["value"], won["lossReason"]) == ("won", 99.5, None)


def test_set_status_at_forces_equal_updated_at(server: FakeOctanistServer) -> None:
    a, b = server.add_leads(2)
    at = "2026-03-10T12:00:00Z"
    server.set_status(a["id"], "won", at=at)
    server.set_status(b["id"], "won", at=datetime(2026, 3, 10, 12, tzinfo=timezone.utc))
    assert (
        server.lead(a["id"])["updatedAt"] == server.lead(b["id"])["updatedAt"] == "2026-03-10T12:00:00.000Z"
    )


def test_at_once_makes_a_request_in_flight_see_every_change_of_the_block(server: FakeOctanistServer) -> None:
    first, second = server.add_leads(2)
    seen: list[list[str]] = []
    reader = threading.Thread(target=lambda: seen.append(list_ids(server, "?status=won")), daemon=True)
    with server.at_once():
        server.set_status(first["id"], "won")
        reader.start()
        reader.join(0.3)
        assert reader.is_alive(), "a listing was answered in the middle of an at_once() block"
        server.set_status(second["id"], "won")
    reader.join(5)
    assert not reader.is_alive(), "the listing was still unanswered 5 s after the block ended"
    assert sorted(seen[0]) == sorted([first["id"], second["id"]])


def test_update_lead_edits_fields_and_bumps_updated_at(server: FakeOctanistServer) -> None:
    lead = server.add_lead()
    updated = server.update_lead(lead["id"], name="Grace", gclid="abc")
    assert (updated["name"], updated["gclid"]) == ("Grace", "abc")
    assert updated["updatedAt"] > lead["updatedAt"]
    pinned = server.update_lead(lead["id"], at="2030-01-01T00:00:00Z", note="n")
    assert pinned["updatedAt"] == "2030-01-01T00:00:00.000Z"
    with pytest.raises(TypeError, match="id cannot be changed"):
        server.update_lead(lead["id"], id="other")


def test_updated_at_increases_strictly_with_the_server_clock(server: FakeOctanistServer) -> None:
    lead = server.add_lead()
    stamps = [server.set_status(lead["id"], "qualified")["updatedAt"] for _ in range(20)]
    assert stamps == sorted(set(stamps))


def test_schedule_status_changes_the_lead_later(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_w")
    server.schedule_status("lead_w", "won", after=0.05, value=1200)
    wait_until(
        lambda: server.lead("lead_w")["status"] == "won",
        timeout=5,
        message="schedule_status never turned lead_w won",
    )
    assert server.lead("lead_w")["value"] == 1200


def test_schedule_status_rejects_unknown_lead_and_status(server: FakeOctanistServer) -> None:
    with pytest.raises(KeyError):
        server.schedule_status("lead_nope", "won", after=1)
    server.add_lead(id="lead_1")
    with pytest.raises(ValueError, match="Unknown lead status"):
        server.schedule_status("lead_1", "closed", after=1)


def test_stop_cancels_scheduled_changes() -> None:
    server = FakeOctanistServer().start()
    server.add_lead(id="lead_w")
    server.schedule_status("lead_w", "won", after=60)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert not [t for t in threading.enumerate() if t.name.startswith("fake-octanist-schedule-")]
    assert server.lead("lead_w")["status"] == "open"


def test_microseconds_stored_and_milliseconds_printed_compare_filters_by_what_is_stored() -> None:
    with FakeOctanistServer(KEY, timestamp_precision="us", printed_precision="ms") as server:
        server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.123456Z")
        (shown,) = call(server, "GET", "/api/leads").data
        assert shown["updatedAt"] == "2026-01-01T00:00:00.123Z"
        assert call(server, "GET", "/api/leads/lead_1").data["updatedAt"] == "2026-01-01T00:00:00.123Z"
        # "strictly after what was printed" still holds the lead: the server compares microseconds
        assert list_ids(server, "?updatedAt[gt]=2026-01-01T00:00:00.123Z") == ["lead_1"]
        assert list_ids(server, "?updatedAt[gte]=2026-01-01T00:00:00.124Z") == []
        assert TIMESTAMP_RE.match(call(server, "GET", "/api/leads").json["meta"]["timestamp"])


def test_printed_precision_must_be_a_known_one() -> None:
    with pytest.raises(ValueError, match="printed_precision must be one of ms, us"):
        FakeOctanistServer(KEY, printed_precision="s")


def test_a_clock_offset_moves_the_servers_stamps_and_meta_timestamp(server: FakeOctanistServer) -> None:
    server.clock_offset = timedelta(minutes=-10)
    before = datetime.now(timezone.utc)
    lead = server.add_lead()
    reply = call(server, "GET", "/api/leads")
    after = datetime.now(timezone.utc)
    for stamp in (parse(lead["updatedAt"]), parse(reply.json["meta"]["timestamp"])):
        assert before - timedelta(minutes=10, milliseconds=1) <= stamp <= after - timedelta(minutes=10)


def test_a_millisecond_clock_over_microsecond_stamps_prints_meta_timestamp_in_milliseconds() -> None:
    with FakeOctanistServer(KEY, timestamp_precision="us") as server:
        server.clock_precision = "ms"
        lead = server.add_lead()
        assert len(lead["updatedAt"]) == len("2026-01-01T00:00:00.000000Z")
        assert TIMESTAMP_RE.match(call(server, "GET", "/api/leads").json["meta"]["timestamp"])


def test_set_statuses_stamps_every_lead_with_one_instant(server: FakeOctanistServer) -> None:
    leads = server.add_leads(3)
    other = server.add_lead()
    changed = server.set_statuses([lead["id"] for lead in leads], "won", value=5)
    assert [lead["id"] for lead in changed] == [lead["id"] for lead in leads]
    assert {lead["updatedAt"] for lead in changed} == {changed[0]["updatedAt"]}
    assert all(lead["status"] == "won" and lead["value"] == 5 for lead in changed)
    assert server.lead(other["id"])["status"] == "open"
    at = server.set_statuses([other["id"]], "lost", at="2026-01-01T00:00:00.000Z")
    assert at[0]["updatedAt"] == "2026-01-01T00:00:00.000Z"
    with pytest.raises(KeyError):
        server.set_statuses([other["id"], "lead_missing"], "won")
    assert server.lead(other["id"])["status"] == "lost", "nothing changed when one lead is missing"
