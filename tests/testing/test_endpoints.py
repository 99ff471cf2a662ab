"""
The lead endpoints and routing as the fake answers them (``_endpoints``): the API key, paths,
methods, reading, creating and changing leads.

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from airflow_provider_octanist.testing import FakeOctanistServer

from .helpers import KEY, call


def test_check_accepts_the_api_key(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/check")
    assert (reply.status, reply.json) == (200, {"success": True})


def test_check_rejects_a_wrong_key_with_the_legacy_flat_body(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/check", key="wrong")
    assert (reply.status, reply.json) == (401, {"error": "Invalid or missing API key"})


@pytest.mark.parametrize("key", [None, "", "wrong", KEY + "x"])
def test_endpoints_reject_a_missing_or_wrong_key_with_unauthorized(
    server: FakeOctanistServer, key: str | None
) -> None:
    server.add_lead(id="lead_1")
    reply = call(server, "GET", "/api/leads/lead_1", key=key)
    assert reply.status == 401
    assert reply.error_code == "UNAUTHORIZED"


def test_custom_api_key_is_the_only_one_accepted() -> None:
    with FakeOctanistServer("another-key") as server:
        assert call(server, "POST", "/api/check", key="another-key").status == 200
        assert call(server, "POST", "/api/check", key=KEY).status == 401


def test_unknown_path_is_not_found(server: FakeOctanistServer) -> None:
    reply = call(server, "GET", "/api/nothing-here")
    assert (reply.status, reply.error_code) == (404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow_header(server: FakeOctanistServer) -> None:
    reply = call(server, "DELETE", "/api/leads")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET, PATCH, POST"
    assert reply.error_code == "METHOD_NOT_ALLOWED"


def test_urllib_client_works_too(server: FakeOctanistServer) -> None:
    request = urllib.request.Request(f"{server.url}/check", method="POST", headers={"X-API-KEY": KEY})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"success": True}


def test_get_lead_returns_the_full_lead(server: FakeOctanistServer) -> None:
    lead = server.add_lead(id="lead_1", name="Ada")
    reply = call(server, "GET", "/api/leads/lead_1")
    assert reply.status == 200
    assert reply.data == lead


def test_get_unknown_lead_is_not_found(server: FakeOctanistServer) -> None:
    reply = call(server, "GET", "/api/leads/lead_nope")
    assert (reply.status, reply.error_code) == (404, "NOT_FOUND")


def test_get_lead_percent_decodes_the_single_id_segment(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead/a b")
    reply = call(server, "GET", "/api/leads/lead%2Fa%20b")
    assert reply.data["id"] == "lead/a b"
    (request,) = server.requests
    assert request.raw_path == "/api/leads/lead%2Fa%20b"
    assert request.path == "/api/leads/lead/a b"


@pytest.mark.parametrize("path", ["/api/leads/a/b", "/api/leads/", "/api/leads/a/"])
def test_lead_paths_with_other_segments_are_not_found(server: FakeOctanistServer, path: str) -> None:
    server.add_lead(id="a")
    assert call(server, "GET", path).status == 404


def test_create_lead_starts_open_with_source_api(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/leads", {"name": "Ada", "email": "ada@example.com", "gclid": "abc"})
    assert reply.status == 200
    data = reply.data
    assert data["message"] == "Lead added"
    lead = server.lead(data["id"])
    assert (lead["status"], lead["source"], lead["gclid"], lead["name"]) == ("open", "api", "abc", "Ada")


def test_create_lead_stringifies_custom_and_reads_consent(server: FakeOctanistServer) -> None:
    reply = call(
        server,
        "POST",
        "/api/leads",
        {"custom": {"company": "Acme Inc"}, "ad_storage": "granted", "ad_user_data": False},
    )
    lead = server.lead(reply.data["id"])
    assert lead["custom"] == '{"company":"Acme Inc"}'
    assert (lead["ad_storage"], lead["ad_user_data"]) == (True, False)


def test_create_lead_ignores_status_and_value(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/leads", {"name": "Ada", "status": "won", "value": 10})
    lead = server.lead(reply.data["id"])
    assert (lead["status"], lead["value"]) == ("open", None)


@pytest.mark.parametrize("body", [{}, {"note": "no contact"}, {"name": ""}])
def test_create_lead_needs_name_email_phone_or_custom(
    server: FakeOctanistServer, body: dict[str, Any]
) -> None:
    reply = call(server, "POST", "/api/leads", body)
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")
    assert server.leads == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", b'"Ada"'])
def test_create_lead_needs_a_json_object_body(server: FakeOctanistServer, raw: bytes) -> None:
    reply = call(server, "POST", "/api/leads", raw=raw)
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_create_lead_rejects_non_string_contact_fields(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/leads", {"name": 42})
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_patch_by_id_sets_status_and_converts_a_numeric_string_value(server: FakeOctanistServer) -> None:
    before = server.add_lead(id="lead_1")
    reply = call(server, "PATCH", "/api/leads", {"id": "lead_1", "status": "won", "value": "1200"})
    assert reply.data == {"leadId": "lead_1", "leadsUpdated": 1, "message": "Lead updated successfully"}
    lead = server.lead("lead_1")
    assert (lead["status"], lead["value"]) == ("won", 1200)
    assert lead["updatedAt"] > before["updatedAt"]


def test_patch_identifier_priority_is_id_then_email_then_phone(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_id", email="a@example.com", phone="111")
    server.add_lead(id="lead_email", email="b@example.com", phone="222")
    server.add_lead(id="lead_phone", phone="333")
    body = {"id": "lead_id", "email": "b@example.com", "status": "qualified"}
    assert call(server, "PATCH", "/api/leads", body).data["leadId"] == "lead_id"
    body = {"email": "B@example.com", "phone": "333", "status": "qualified"}
    assert call(server, "PATCH", "/api/leads", body).data["leadId"] == "lead_email"
    body = {"phone": "333", "status": "qualified"}
    assert call(server, "PATCH", "/api/leads", body).data["leadId"] == "lead_phone"


def test_patch_without_identifier_is_a_validation_error(server: FakeOctanistServer) -> None:
    reply = call(server, "PATCH", "/api/leads", {"status": "won"})
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_patch_of_unknown_lead_is_not_found(server: FakeOctanistServer) -> None:
    reply = call(server, "PATCH", "/api/leads", {"id": "lead_nope", "status": "won"})
    assert (reply.status, reply.error_code) == (404, "NOT_FOUND")


def test_patch_matching_several_leads_conflicts_without_bulk_updates(server: FakeOctanistServer) -> None:
    server.add_leads(2, email="same@example.com")
    reply = call(server, "PATCH", "/api/leads", {"email": "same@example.com", "status": "won"})
    assert (reply.status, reply.error_code) == (409, "CONFLICT")
    assert {lead["status"] for lead in server.leads} == {"open"}


def test_patch_with_bulk_updates_changes_every_match_with_one_timestamp(server: FakeOctanistServer) -> None:
    server.bulk_updates = True
    first, _ = server.add_leads(2, email="same@example.com")
    reply = call(server, "PATCH", "/api/leads", {"email": "same@example.com", "status": "lost"})
    assert reply.data["leadsUpdated"] == 2
    assert reply.data["leadId"] == first["id"]
    leads = server.leads
    assert {lead["status"] for lead in leads} == {"lost"}
    assert leads[0]["updatedAt"] == leads[1]["updatedAt"]


@pytest.mark.parametrize("status", ["open", "closed", 3])
def test_patch_cannot_set_open_or_unknown_statuses(server: FakeOctanistServer, status: Any) -> None:
    server.add_lead(id="lead_1", status="won")
    reply = call(server, "PATCH", "/api/leads", {"id": "lead_1", "status": status})
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")
    assert server.lead("lead_1")["status"] == "won"


def test_patch_accepts_legacy_changed_to_but_status_wins(server: FakeOctanistServer) -> None:
    server.add_leads(2)
    a, b = (lead["id"] for lead in server.leads)
    call(server, "PATCH", "/api/leads", {"id": a, "changedTo": "lost"})
    call(server, "PATCH", "/api/leads", {"id": b, "changedTo": "lost", "status": "qualified"})
    assert (server.lead(a)["status"], server.lead(b)["status"]) == ("lost", "qualified")


@pytest.mark.parametrize("value", ["a lot", True, [1]])
def test_patch_rejects_non_numeric_values(server: FakeOctanistServer, value: Any) -> None:
    server.add_lead(id="lead_1")
    reply = call(server, "PATCH", "/api/leads", {"id": "lead_1", "value": value})
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_patch_keeps_loss_reason_only_when_lost(server: FakeOctanistServer) -> None:
    server.add_leads(2)
    a, b = (lead["id"] for lead in server.leads)
    call(server, "PATCH", "/api/leads", {"id": a, "status": "lost", "lossReason": "Budget"})
    call(server, "PATCH", "/api/leads", {"id": b, "status": "qualified", "lossReason": "Budget"})
    assert server.lead(a)["lossReason"] == "Budget"
    assert server.lead(b)["lossReason"] is None


def test_patch_note_only_is_an_update(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    assert call(server, "PATCH", "/api/leads", {"id": "lead_1", "note": "called back"}).status == 200
    assert server.lead("lead_1")["note"] == "called back"


def test_patch_with_nothing_to_change_is_a_validation_error(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    reply = call(server, "PATCH", "/api/leads", {"id": "lead_1"})
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_patch_won_sets_qualified_at_only_with_legacy_also_qualified(server: FakeOctanistServer) -> None:
    server.add_leads(2)
    a, b = (lead["id"] for lead in server.leads)
    call(server, "PATCH", "/api/leads", {"id": a, "status": "won"})
    call(server, "PATCH", "/api/leads", {"id": b, "status": "won", "alsoQualified": True})
    assert server.lead(a)["qualifiedAt"] is None
    assert server.lead(b)["qualifiedAt"] == server.lead(b)["updatedAt"]


def test_patch_to_the_current_status_is_idempotent_but_bumps_updated_at(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    first = call(server, "PATCH", "/api/leads", {"id": "lead_1", "status": "won"})
    stamp = server.lead("lead_1")["updatedAt"]
    again = call(server, "PATCH", "/api/leads", {"id": "lead_1", "status": "won"})
    assert first.status == again.status == 200
    assert server.lead("lead_1")["status"] == "won"
    assert server.lead("lead_1")["updatedAt"] > stamp
