"""Specification of FakeOctanistServer, exercised over real loopback HTTP with stdlib clients only."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import airflow_provider_octanist.testing
from airflow_provider_octanist.testing import FAULT_KINDS, FakeOctanistServer, Fault, RecordedRequest

if TYPE_CHECKING:
    from collections.abc import Callable

pytest_plugins = ["pytester", "airflow_provider_octanist.testing.pytest_plugin"]

KEY = "test-api-key"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUEST_ID_RE = re.compile(r"^req_[0-9a-f]{12}$")
REPO_ROOT = Path(airflow_provider_octanist.testing.__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def data(self) -> Any:
        payload = self.json
        assert payload["success"] is True, payload
        return payload["data"]

    @property
    def error_code(self) -> str:
        payload = self.json
        assert payload["success"] is False, payload
        return str(payload["error"]["code"])


def call(
    server: FakeOctanistServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = KEY,
    raw: bytes | None = None,
    timeout: float = 5.0,
) -> Reply:
    """One request on a fresh connection; ``path`` is sent exactly as given (no encoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        headers = {} if key is None else {"X-API-KEY": key}
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        conn.close()


def parse(timestamp: str) -> datetime:
    assert TIMESTAMP_RE.match(timestamp), timestamp
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def list_ids(server: FakeOctanistServer, query: str = "") -> list[str]:
    reply = call(server, "GET", "/api/leads" + query)
    assert reply.status == 200, reply.body
    return [lead["id"] for lead in reply.data]


def wait_until(predicate: Callable[[], bool], *, timeout: float, message: str) -> None:
    """Poll ``predicate`` until it holds; fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{message} (waited {timeout} s)")
        time.sleep(0.01)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def server(octanist_server: FakeOctanistServer) -> FakeOctanistServer:
    return octanist_server


# ----------------------------------------------------------------------------------------------
# Lifecycle
# ----------------------------------------------------------------------------------------------


def test_url_is_loopback_base_url_with_api_prefix(server: FakeOctanistServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}/api"
    assert server.port > 0
    assert server.is_running


def test_port_is_unknown_before_start() -> None:
    with pytest.raises(RuntimeError, match="start"):
        _ = FakeOctanistServer().port


def test_stop_is_idempotent_and_a_stopped_server_cannot_restart() -> None:
    server = FakeOctanistServer().start()
    server.stop()
    server.stop()
    assert not server.is_running
    with pytest.raises(RuntimeError, match="create a new one"):
        server.start()


def test_stopped_server_refuses_connections() -> None:
    with FakeOctanistServer() as server:
        port = server.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_repr_shows_url_and_lead_count_but_never_the_key() -> None:
    with FakeOctanistServer("s3cret-key") as server:
        server.add_leads(2)
        text = repr(server)
        assert server.url in text
        assert "leads=2" in text
        assert "s3cret-key" not in text
    assert "s3cret-key" not in repr(server)


def test_stop_returns_promptly_with_an_idle_keep_alive_connection() -> None:
    server = FakeOctanistServer().start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", "/api/check", headers={"X-API-KEY": KEY})
    assert conn.getresponse().read() == b'{"success":true}'
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    conn.close()


def test_stop_returns_promptly_with_a_connection_that_never_sent_a_request() -> None:
    server = FakeOctanistServer().start()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    wait_until(lambda: server.connections_opened == 1, timeout=5, message="connection was never accepted")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert sock.recv(1) == b""
    sock.close()


def test_stop_interrupts_a_delayed_response() -> None:
    server = FakeOctanistServer().start()
    server.inject("delay", seconds=60)
    errors: list[BaseException] = []

    def slow_request() -> None:
        try:
            call(server, "POST", "/api/check", timeout=30)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(exc)

    client = threading.Thread(target=slow_request)
    client.start()
    wait_until(lambda: server.request_count() == 1, timeout=5, message="request never reached the server")
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    client.join(timeout=5)
    assert not client.is_alive()


def test_keep_alive_serves_two_requests_over_one_connection(server: FakeOctanistServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(2):
            conn.request("GET", "/api/leads", headers={"X-API-KEY": KEY})
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(len(response.read()))
    finally:
        conn.close()
    assert server.connections_opened == 1
    assert [r.connection_id for r in server.requests] == [1, 1]


def test_each_new_connection_is_counted(server: FakeOctanistServer) -> None:
    call(server, "POST", "/api/check")
    call(server, "POST", "/api/check")
    assert server.connections_opened == 2
    assert [r.connection_id for r in server.requests] == [1, 2]


def test_many_simultaneous_clients_are_all_served(server: FakeOctanistServer) -> None:
    clients = 50
    barrier = threading.Barrier(clients)
    statuses: list[int] = []
    lock = threading.Lock()

    def create(n: int) -> None:
        barrier.wait(timeout=10)
        reply = call(server, "POST", "/api/leads", {"name": f"Lead {n}"})
        with lock:
            statuses.append(reply.status)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert statuses == [200] * clients
    assert len({lead["id"] for lead in server.leads}) == clients
    assert server.connections_opened == clients


# ----------------------------------------------------------------------------------------------
# Authentication, envelope, routing
# ----------------------------------------------------------------------------------------------


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


def test_success_envelope_carries_request_id_header_and_timestamp(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    reply = call(server, "GET", "/api/leads/lead_1")
    meta = reply.json["meta"]
    assert REQUEST_ID_RE.match(meta["requestId"])
    assert reply.headers["X-Request-Id"] == meta["requestId"]
    assert TIMESTAMP_RE.match(meta["timestamp"])
    assert "pagination" not in meta


def test_error_envelope_has_code_message_details_and_meta(server: FakeOctanistServer) -> None:
    reply = call(server, "GET", "/api/leads/lead_missing")
    payload = reply.json
    assert payload["success"] is False
    assert set(payload["error"]) == {"code", "message", "details"}
    assert reply.headers["X-Request-Id"] == payload["meta"]["requestId"]


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


# ----------------------------------------------------------------------------------------------
# Recording
# ----------------------------------------------------------------------------------------------


def test_recorded_request_redacts_the_api_key(server: FakeOctanistServer) -> None:
    call(server, "POST", "/api/leads?x=1", {"name": "Ada"})
    (request,) = server.requests
    assert isinstance(request, RecordedRequest)
    assert request.headers["X-API-KEY"] == "***"
    assert request.headers["x-api-key"] == "***"
    assert request.api_key_sent
    assert KEY not in repr(request)
    assert (request.method, request.path, request.query, request.body) == (
        "POST",
        "/api/leads",
        {"x": ["1"]},
        {"name": "Ada"},
    )


def test_request_without_key_is_recorded_as_such(server: FakeOctanistServer) -> None:
    call(server, "POST", "/api/check", key=None)
    assert not server.requests[0].api_key_sent


def test_request_count_filters_by_method_and_path(server: FakeOctanistServer) -> None:
    call(server, "GET", "/api/leads")
    call(server, "GET", "/api/leads?page=2")
    call(server, "POST", "/api/check")
    assert server.request_count() == 3
    assert server.request_count("get", "/api/leads") == 2
    assert server.request_count(path="/api/check") == 1
    server.clear_requests()
    assert server.request_count() == 0
    assert server.connections_opened == 3


def test_api_key_is_never_logged(server: FakeOctanistServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call(server, "POST", "/api/check")
    call(server, "GET", "/api/leads", key=None)
    assert "/api/check" in caplog.text
    assert KEY not in caplog.text


# ----------------------------------------------------------------------------------------------
# Seeding and changing data from Python
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# GET /leads/{id}
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# GET /leads
# ----------------------------------------------------------------------------------------------


def test_list_defaults_to_newest_first_with_pagination_meta(server: FakeOctanistServer) -> None:
    added = server.add_leads(3)
    reply = call(server, "GET", "/api/leads")
    assert [lead["id"] for lead in reply.data] == [lead["id"] for lead in reversed(added)]
    assert reply.json["meta"]["pagination"] == {
        "limit": 50,
        "page": 1,
        "totalPages": 1,
        "total": 3,
        "hasMore": False,
    }


def test_list_pages_through_every_lead_exactly_once(server: FakeOctanistServer) -> None:
    server.add_leads(7)
    seen: list[str] = []
    for page in (1, 2, 3):
        reply = call(server, "GET", f"/api/leads?limit=3&page={page}")
        pagination = reply.json["meta"]["pagination"]
        assert (pagination["page"], pagination["totalPages"], pagination["total"]) == (page, 3, 7)
        assert pagination["hasMore"] is (page < 3)
        seen += [lead["id"] for lead in reply.data]
    assert sorted(seen) == sorted(lead["id"] for lead in server.leads)
    assert len(seen) == 7
    assert call(server, "GET", "/api/leads?limit=3&page=4").data == []


def test_equal_timestamps_are_ordered_by_id_so_paging_is_deterministic(server: FakeOctanistServer) -> None:
    at = "2026-03-10T12:00:00.000Z"
    for lead_id in ("lead_c", "lead_a", "lead_d", "lead_b"):
        server.add_lead(id=lead_id, createdAt=at, updatedAt=at)
    asc = list_ids(server, "?sort=updatedAt:asc&limit=2") + list_ids(
        server, "?sort=updatedAt:asc&limit=2&page=2"
    )
    assert asc == ["lead_a", "lead_b", "lead_c", "lead_d"]
    assert list_ids(server, "?sort=updatedAt:desc") == ["lead_d", "lead_c", "lead_b", "lead_a"]


def test_sort_accepts_legacy_snake_case(server: FakeOctanistServer) -> None:
    old = server.add_lead(id="lead_old")
    new = server.add_lead(id="lead_new")
    server.set_status(old["id"], "won")
    assert list_ids(server, "?sort=updated_at:asc") == [new["id"], old["id"]]
    assert list_ids(server, "?sort=created_at:desc") == [new["id"], old["id"]]


def test_sort_puts_missing_values_last_when_ascending(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_none")
    server.add_lead(id="lead_big", value=500)
    server.add_lead(id="lead_small", value=5)
    assert list_ids(server, "?sort=value:asc") == ["lead_small", "lead_big", "lead_none"]


@pytest.mark.parametrize("sort", ["bogus:asc", "createdAt:up", "custom:desc"])
def test_invalid_sort_is_a_validation_error(server: FakeOctanistServer, sort: str) -> None:
    reply = call(server, "GET", f"/api/leads?sort={sort}")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "page=0", "page=-1"])
def test_limit_and_page_out_of_range_are_validation_errors(server: FakeOctanistServer, query: str) -> None:
    reply = call(server, "GET", f"/api/leads?{query}")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_limit_of_100_is_allowed(server: FakeOctanistServer) -> None:
    server.add_leads(101)
    reply = call(server, "GET", "/api/leads?limit=100")
    assert len(reply.data) == 100
    assert reply.json["meta"]["pagination"]["hasMore"] is True


@pytest.mark.parametrize(("query", "expected"), [("status=won", {"lead_w"}), ("status=win", {"lead_w"})])
def test_status_filter_accepts_current_and_legacy_spelling(
    server: FakeOctanistServer, query: str, expected: set[str]
) -> None:
    server.add_lead(id="lead_o")
    server.add_lead(id="lead_w", status="won")
    assert set(list_ids(server, f"?{query}")) == expected


def test_unknown_status_filter_is_a_validation_error(server: FakeOctanistServer) -> None:
    reply = call(server, "GET", "/api/leads?status=closed")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


def test_updated_at_comparison_filters(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.000Z")
    server.add_lead(id="lead_2", updatedAt="2026-02-01T00:00:00.000Z")
    server.add_lead(id="lead_3", updatedAt="2026-03-01T00:00:00.000Z")
    assert set(list_ids(server, "?updatedAt[gt]=2026-02-01T00:00:00.000Z")) == {"lead_3"}
    assert set(list_ids(server, "?updatedAt[gte]=2026-02-01T00:00:00.000Z")) == {"lead_2", "lead_3"}
    assert set(list_ids(server, "?updatedAt[lt]=2026-02-01")) == {"lead_1"}
    assert set(list_ids(server, "?updatedAt[lte]=2026-02-01T01:00:00%2B01:00")) == {"lead_1", "lead_2"}


def test_time_filters_keep_sub_millisecond_precision(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.000Z")
    assert list_ids(server, "?updatedAt[gte]=2026-01-01T00:00:00.000500Z") == []
    assert list_ids(server, "?updatedAt[lt]=2026-01-01T00:00:00.000500Z") == ["lead_1"]


def test_legacy_updated_after_means_updated_at_greater_than(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", updatedAt="2026-01-01T00:00:00.000Z")
    server.add_lead(id="lead_2", updatedAt="2026-02-01T00:00:00.000Z")
    assert list_ids(server, "?updated_after=2026-01-01T00:00:00Z") == ["lead_2"]


def test_value_filters_compare_numbers(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_none")
    server.add_lead(id="lead_50", value=50)
    server.add_lead(id="lead_150", value=150.5)
    assert set(list_ids(server, "?value[gte]=100")) == {"lead_150"}
    assert set(list_ids(server, "?value[lt]=100")) == {"lead_50"}
    assert set(list_ids(server, "?value=50")) == {"lead_50"}
    assert call(server, "GET", "/api/leads?value[gt]=lots").error_code == "VALIDATION_ERROR"


def test_exists_filters_on_timestamps_and_click_ids(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_g", gclid="Cj0KCQ")
    server.add_lead(id="lead_q", status="qualified")
    assert list_ids(server, "?gclid[exists]=true") == ["lead_g"]
    assert list_ids(server, "?gclid[exists]=false") == ["lead_q"]
    assert list_ids(server, "?qualifiedAt[exists]=true") == ["lead_q"]
    assert call(server, "GET", "/api/leads?gclid[exists]=maybe").error_code == "INVALID_FILTER"


def test_equality_filters_on_source_and_utm(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_a", source="gtm", utm_source="google")
    server.add_lead(id="lead_b", source="manual", utm_source="google")
    assert list_ids(server, "?source=gtm") == ["lead_a"]
    assert set(list_ids(server, "?utm_source=google")) == {"lead_a", "lead_b"}
    assert list_ids(server, "?source=gtm&utm_source=google") == ["lead_a"]


@pytest.mark.parametrize(
    "query", ["foo=bar", "status[gt]=won", "gclid=abc", "createdAt[eq]=2026-01-01", "name=Ada"]
)
def test_unknown_filter_fields_and_operators_are_invalid_filter(
    server: FakeOctanistServer, query: str
) -> None:
    reply = call(server, "GET", f"/api/leads?{query}")
    assert (reply.status, reply.error_code) == (400, "INVALID_FILTER")


@pytest.mark.parametrize(
    "query", ["updatedAt[gt]=yesterday", "createdAt[lt]=2026-13-01", "updated_after=soon"]
)
def test_unparsable_dates_are_invalid_date(server: FakeOctanistServer, query: str) -> None:
    reply = call(server, "GET", f"/api/leads?{query}")
    assert (reply.status, reply.error_code) == (400, "INVALID_DATE")


def test_search_matches_name_email_and_phone_case_insensitively(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_n", name="Ada Lovelace")
    server.add_lead(id="lead_e", email="ADA@example.com")
    server.add_lead(id="lead_p", phone="+31 6 1234")
    server.add_lead(id="lead_x", name="Grace", note="ada in a note does not count")
    assert set(list_ids(server, "?search=ada")) == {"lead_n", "lead_e"}
    assert list_ids(server, "?search=1234") == ["lead_p"]


def test_fields_selects_fields_and_always_includes_id(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", name="Ada", email="ada@example.com")
    assert call(server, "GET", "/api/leads?fields=name,status").data == [
        {"id": "lead_1", "name": "Ada", "status": "open"}
    ]


def test_lying_pagination_always_claims_more_and_repeats_the_last_page(server: FakeOctanistServer) -> None:
    server.add_leads(3)
    server.lying_pagination = True
    last = call(server, "GET", "/api/leads?limit=2&page=2")
    beyond = call(server, "GET", "/api/leads?limit=2&page=9")
    assert last.json["meta"]["pagination"]["hasMore"] is True
    assert beyond.json["meta"]["pagination"]["hasMore"] is True
    assert beyond.json["meta"]["pagination"]["page"] == 9
    assert beyond.data == last.data
    assert len(beyond.data) == 1


# -- the quirks of a real deployment (issue 17) ------------------------------------------------


def test_a_page_cap_serves_fewer_leads_than_asked_and_says_the_limit_it_used(
    server: FakeOctanistServer,
) -> None:
    server.add_leads(120)
    server.page_cap = 50
    pages = [call(server, "GET", f"/api/leads?limit=100&page={n}") for n in (1, 2, 3)]
    assert [len(page.data) for page in pages] == [50, 50, 20]
    assert [page.json["meta"]["pagination"]["hasMore"] for page in pages] == [True, True, False]
    assert pages[0].json["meta"]["pagination"] == {
        "limit": 50,
        "page": 1,
        "totalPages": 3,
        "total": 120,
        "hasMore": True,
    }
    assert len(call(server, "GET", "/api/leads?limit=20").data) == 20, "a smaller limit is honoured"


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


def test_a_stale_timestamp_is_every_answers_meta_timestamp(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.stale_timestamp = "1970-01-01T00:00:00.000Z"
    assert call(server, "GET", "/api/leads").json["meta"]["timestamp"] == "1970-01-01T00:00:00.000Z"
    assert call(server, "GET", "/api/leads/lead_1").json["meta"]["timestamp"] == "1970-01-01T00:00:00.000Z"
    assert parse(server.add_lead()["updatedAt"]).year > 2000, "its stamps keep the real clock"


def test_omit_timestamp_leaves_meta_timestamp_out_of_every_success_answer(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.omit_timestamp = True
    for path in ("/api/leads", "/api/leads/lead_1"):
        meta = call(server, "GET", path).json["meta"]
        assert "timestamp" not in meta, meta
        assert REQUEST_ID_RE.match(meta["requestId"])
    server.omit_timestamp = False
    assert TIMESTAMP_RE.match(call(server, "GET", "/api/leads").json["meta"]["timestamp"])


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


def test_gte_as_gt_applies_every_gte_time_filter_as_gt(server: FakeOctanistServer) -> None:
    lead = server.add_lead(updatedAt="2026-01-01T00:00:00.000Z")
    query = "?updatedAt[gte]=2026-01-01T00:00:00.000Z"
    assert list_ids(server, query) == [lead["id"]]
    server.gte_as_gt = True
    assert list_ids(server, query) == []


def test_ignore_page_answers_every_page_with_the_first(server: FakeOctanistServer) -> None:
    server.add_leads(5, updatedAt="2026-01-01T00:00:00.000Z")
    query = "?sort=updatedAt:asc&limit=2&page="
    assert list_ids(server, query + "1") != list_ids(server, query + "2")
    server.ignore_page = True
    assert list_ids(server, query + "1") == list_ids(server, query + "2") == list_ids(server, query + "3")


def test_a_change_during_listing_runs_once_before_the_answer_to_that_page(
    server: FakeOctanistServer,
) -> None:
    leads = server.add_leads(4, updatedAt="2026-01-01T00:00:00.000Z")
    ran: list[int] = []

    def edit_the_first() -> None:
        server.update_lead(leads[0]["id"], note="moved")
        ran.append(1)

    server.change_during_listing(edit_the_first, page=2)
    query = "?sort=updatedAt:asc&limit=2&updatedAt[lte]=2026-01-01T00:00:00.000Z"
    first = list_ids(server, query + "&page=1")
    assert ran == []
    second = list_ids(server, query + "&page=2")
    assert ran == [1]
    assert first == sorted(lead["id"] for lead in leads)[:2]
    assert len(second) == 1, "the edited lead left the listing, so its last page shifted"
    list_ids(server, query + "&page=2")
    assert ran == [1], "it runs once"


def test_a_change_during_listing_needs_a_page_number(server: FakeOctanistServer) -> None:
    with pytest.raises(ValueError, match="page must be a page number"):
        server.change_during_listing(lambda: None, page=0)


def test_a_deleted_lead_is_gone_from_every_answer(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.add_lead(id="lead_2")
    server.delete_lead("lead_1")
    assert call(server, "GET", "/api/leads/lead_1").error_code == "NOT_FOUND"
    assert list_ids(server) == ["lead_2"]
    with pytest.raises(KeyError, match="lead_1"):
        server.delete_lead("lead_1")


def test_a_refused_filter_is_answered_invalid_filter_and_other_filters_still_work(
    server: FakeOctanistServer,
) -> None:
    server.add_lead(id="lead_1")
    server.refused_filters = frozenset({"createdAt"})
    refused = call(server, "GET", "/api/leads?createdAt[lt]=2030-01-01T00:00:00.000Z&limit=1")
    assert (refused.status, refused.error_code) == (400, "INVALID_FILTER")
    assert list_ids(server, "?updatedAt[lt]=2030-01-01T00:00:00.000Z") == ["lead_1"]


# ----------------------------------------------------------------------------------------------
# POST /leads
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# PATCH /leads
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# POST /stats
# ----------------------------------------------------------------------------------------------


def test_stats_summarise_the_leads_of_the_current_period(server: FakeOctanistServer) -> None:
    server.add_leads(2, source="gtm")
    server.add_lead(source="api", status="qualified")
    server.add_lead(source="gtm", status="won", value=1000)
    server.add_lead(source="gtm", status="won", value=3000)
    server.add_lead(source="manual", status="lost")
    data = call(server, "POST", "/api/stats", {}).data
    assert data["leads"] == {
        "total": 6,
        "byStatus": {"open": 2, "qualified": 1, "won": 2, "lost": 1},
        "bySource": {"api": 1, "gtm": 4, "manual": 1},
    }
    assert data["conversion"] == {
        "qualified": 3,
        "qualificationRate": round(4 / 6, 4),
        "winRate": round(2 / 3, 4),
        "averageValue": 2000,
        "totalValue": 4000,
    }
    usage = data["usage"]
    assert (usage["leadsUsed"], usage["leadsLimit"], usage["lockedLeads"]) == (6, 500, 0)
    assert TIMESTAMP_RE.match(usage["periodStart"])
    assert usage["periodStart"].endswith("-01T00:00:00.000Z")
    assert usage["periodEnd"].endswith("T23:59:59.999Z")


def test_stats_custom_period_counts_leads_created_in_range(server: FakeOctanistServer) -> None:
    server.add_lead(createdAt="2026-01-10T12:00:00Z")
    server.add_lead(createdAt="2026-01-31T23:59:59.999Z")
    server.add_lead(createdAt="2026-02-01T00:00:00Z")
    body = {"period": "custom", "startDate": "2026-01-01", "endDate": "2026-01-31"}
    data = call(server, "POST", "/api/stats", body).data
    assert data["leads"]["total"] == 2
    assert (data["usage"]["periodStart"], data["usage"]["periodEnd"]) == (
        "2026-01-01T00:00:00.000Z",
        "2026-01-31T23:59:59.999Z",
    )


def test_stats_previous_period_is_the_month_before(server: FakeOctanistServer) -> None:
    data = call(server, "POST", "/api/stats", {"period": "previous"}).data
    start = parse(data["usage"]["periodStart"])
    now = datetime.now(timezone.utc)
    assert (start.year * 12 + start.month) == (now.year * 12 + now.month - 1)


def test_stats_require_a_body(server: FakeOctanistServer) -> None:
    reply = call(server, "POST", "/api/stats")
    assert (reply.status, reply.error_code) == (400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"period": "custom"}, "VALIDATION_ERROR"),
        ({"period": "custom", "startDate": "2026-01-01"}, "VALIDATION_ERROR"),
        ({"period": "custom", "startDate": "01/01/2026", "endDate": "2026-01-31"}, "INVALID_DATE"),
        ({"period": "custom", "startDate": "2026-02-01", "endDate": "2026-01-01"}, "VALIDATION_ERROR"),
        ({"period": "lifetime"}, "VALIDATION_ERROR"),
    ],
)
def test_stats_reject_bad_periods(server: FakeOctanistServer, body: dict[str, Any], code: str) -> None:
    reply = call(server, "POST", "/api/stats", body)
    assert (reply.status, reply.error_code) == (400, code)


# ----------------------------------------------------------------------------------------------
# POST /ad-spend
# ----------------------------------------------------------------------------------------------


def test_ad_spend_returns_deterministic_daily_rows_per_platform(server: FakeOctanistServer) -> None:
    body = {"startDate": "2026-03-01", "endDate": "2026-03-03"}
    first = call(server, "POST", "/api/ad-spend", body)
    second = call(server, "POST", "/api/ad-spend", body)
    assert first.data == second.data
    rows = first.data
    assert [(row["date"], row["platform"]) for row in rows] == [
        (day, platform)
        for day in ("2026-03-01", "2026-03-02", "2026-03-03")
        for platform in ("google_ads", "meta_ads")
    ]
    assert set(rows[0]) == {"date", "platform", "spend", "currency", "clicks", "impressions"}
    assert first.json["meta"]["pagination"] == {
        "limit": 50,
        "page": 1,
        "totalPages": 1,
        "total": 6,
        "hasMore": False,
    }


def test_ad_spend_is_paginated_and_filterable_by_platform(server: FakeOctanistServer) -> None:
    body = {"startDate": "2026-03-01", "endDate": "2026-03-10", "limit": 4, "page": 3, "platform": "meta_ads"}
    reply = call(server, "POST", "/api/ad-spend", body)
    assert [row["date"] for row in reply.data] == ["2026-03-09", "2026-03-10"]
    assert {row["platform"] for row in reply.data} == {"meta_ads"}
    assert reply.json["meta"]["pagination"]["hasMore"] is False


def test_ad_spend_can_group_by_platform(server: FakeOctanistServer) -> None:
    daily = call(server, "POST", "/api/ad-spend", {"startDate": "2026-03-01", "endDate": "2026-03-05"}).data
    grouped = call(
        server,
        "POST",
        "/api/ad-spend",
        {"startDate": "2026-03-01", "endDate": "2026-03-05", "groupBy": "platform"},
    ).data
    assert [row["platform"] for row in grouped] == ["google_ads", "meta_ads"]
    google_clicks = sum(row["clicks"] for row in daily if row["platform"] == "google_ads")
    assert grouped[0]["clicks"] == google_clicks


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "VALIDATION_ERROR"),
        ({"startDate": "2026-03-01"}, "VALIDATION_ERROR"),
        ({"startDate": "2026-3-1", "endDate": "2026-03-02"}, "INVALID_DATE"),
        ({"startDate": "2026-03-02", "endDate": "2026-03-01"}, "VALIDATION_ERROR"),
        ({"startDate": "2026-03-01", "endDate": "2026-03-02", "limit": 501}, "VALIDATION_ERROR"),
        ({"startDate": "2026-03-01", "endDate": "2026-03-02", "page": 0}, "VALIDATION_ERROR"),
    ],
)
def test_ad_spend_rejects_bad_requests(server: FakeOctanistServer, body: dict[str, Any], code: str) -> None:
    reply = call(server, "POST", "/api/ad-spend", body)
    assert (reply.status, reply.error_code) == (400, code)


def test_ad_spend_allows_pages_of_500(server: FakeOctanistServer) -> None:
    reply = call(
        server, "POST", "/api/ad-spend", {"startDate": "2025-01-01", "endDate": "2025-12-31", "limit": 500}
    )
    assert len(reply.data) == 500
    assert reply.json["meta"]["pagination"]["total"] == 730


# ----------------------------------------------------------------------------------------------
# Fault injection
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "INTERNAL_ERROR"),
        (502, "BAD_GATEWAY"),
        (503, "SERVICE_UNAVAILABLE"),
        (504, "GATEWAY_TIMEOUT"),
        (429, "RATE_LIMITED"),
        (401, "UNAUTHORIZED"),
        (403, "FORBIDDEN"),
    ],
)
def test_status_fault_answers_with_an_error_envelope(
    server: FakeOctanistServer, status: int, code: str
) -> None:
    server.inject("status", status=status)
    reply = call(server, "GET", "/api/leads")
    assert (reply.status, reply.error_code) == (status, code)
    assert "Retry-After" not in reply.headers
    assert call(server, "GET", "/api/leads").status == 200


def test_status_fault_sends_retry_after_seconds(server: FakeOctanistServer) -> None:
    server.inject("status", status=429, retry_after=7)
    assert call(server, "GET", "/api/leads").headers["Retry-After"] == "7"


def test_status_fault_sends_retry_after_as_http_date(server: FakeOctanistServer) -> None:
    server.inject("status", status=503, retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    server.inject("status", status=503, retry_after=datetime(2026, 10, 21, 7, 28, tzinfo=timezone.utc))
    assert call(server, "GET", "/api/leads").headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert call(server, "GET", "/api/leads").headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"


def test_status_fault_can_send_a_raw_body(server: FakeOctanistServer) -> None:
    server.inject("status", status=502, body="<html>upstream down</html>")
    reply = call(server, "GET", "/api/leads")
    assert (reply.status, reply.body) == (502, b"<html>upstream down</html>")
    assert reply.headers["Content-Type"].startswith("text/html")


def test_status_fault_code_and_message_can_be_chosen(server: FakeOctanistServer) -> None:
    server.inject("status", status=400, code="INVALID_FILTER", message="nope")
    error = call(server, "GET", "/api/leads").json["error"]
    assert (error["code"], error["message"]) == ("INVALID_FILTER", "nope")


def test_fault_replaces_authentication(server: FakeOctanistServer) -> None:
    server.inject("status", status=503)
    assert call(server, "POST", "/api/check", key=None).status == 503


def test_fault_applies_count_times_then_is_consumed(server: FakeOctanistServer) -> None:
    server.inject("status", status=500, count=2)
    assert server.pending_faults == [Fault("status", count=2, options={"status": 500})]
    statuses = [call(server, "POST", "/api/check").status for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert server.pending_faults == []


def test_fault_matches_exact_path_and_method(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_x")
    server.inject("status", status=500, method="get", path="/api/leads/lead_x")
    assert call(server, "GET", "/api/leads").status == 200
    assert call(server, "POST", "/api/check").status == 200
    assert call(server, "GET", "/api/leads/lead_x").status == 500
    assert call(server, "GET", "/api/leads/lead_x").status == 200


def test_fault_matches_path_prefix(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_x")
    server.inject("status", status=503, path_prefix="/api/leads/")
    assert call(server, "GET", "/api/leads").status == 200
    assert call(server, "GET", "/api/leads/lead_x").status == 503


def test_faults_are_applied_first_in_first_out(server: FakeOctanistServer) -> None:
    server.inject("status", status=500)
    server.inject("status", status=503)
    server.inject("status", status=429, path="/api/stats")
    assert call(server, "POST", "/api/stats", {}).status == 500
    assert call(server, "POST", "/api/check").status == 503
    assert call(server, "POST", "/api/check").status == 200
    assert call(server, "POST", "/api/stats", {}).status == 429


def test_a_fault_with_after_spares_that_many_matching_requests_first(server: FakeOctanistServer) -> None:
    server.inject("status", status=503, count=2, after=2, path="/api/leads")
    waiting = Fault("status", count=2, path="/api/leads", options={"status": 503}, after=2)
    assert server.pending_faults == [waiting]
    assert call(server, "POST", "/api/check").status == 200, "requests it does not match are not counted"
    assert [call(server, "GET", "/api/leads").status for _ in range(5)] == [200, 200, 503, 503, 200]
    assert server.pending_faults == []


def test_a_fault_waiting_its_turn_lets_a_later_fault_apply(server: FakeOctanistServer) -> None:
    server.inject("status", status=503, after=1, path="/api/leads")
    server.inject("status", status=500, path="/api/leads")
    assert [call(server, "GET", "/api/leads").status for _ in range(3)] == [500, 503, 200]


def test_after_must_be_a_whole_number_of_requests(server: FakeOctanistServer) -> None:
    with pytest.raises(ValueError, match="after must be a whole number"):
        server.inject("status", status=500, after=-1)


def test_clear_faults_drops_pending_faults(server: FakeOctanistServer) -> None:
    server.inject("status", status=500, count=5)
    server.clear_faults()
    assert call(server, "POST", "/api/check").status == 200


def test_delay_fault_makes_the_client_time_out(server: FakeOctanistServer) -> None:
    server.inject("delay", seconds=30)
    with pytest.raises(TimeoutError):
        call(server, "POST", "/api/check", timeout=0.2)


def test_delay_fault_then_answers_normally(server: FakeOctanistServer) -> None:
    server.inject("delay", seconds=0.1)
    started = time.monotonic()
    reply = call(server, "POST", "/api/leads", {"name": "Ada"})
    assert time.monotonic() - started >= 0.1
    assert reply.status == 200
    assert len(server.leads) == 1


def test_latency_is_added_to_every_response() -> None:
    with FakeOctanistServer(latency=0.3) as server:
        for _ in range(2):
            started = time.monotonic()
            assert call(server, "POST", "/api/check").status == 200
            assert time.monotonic() - started >= 0.3
        server.latency = 0
        started = time.monotonic()
        call(server, "POST", "/api/check")
        assert time.monotonic() - started < 0.3


def test_garbage_fault_sends_html_with_status_200(server: FakeOctanistServer) -> None:
    server.inject("garbage")
    reply = call(server, "GET", "/api/leads")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.body == b"<html><body>Bad gateway</body></html>"
    with pytest.raises(ValueError, match="Expecting value"):
        _ = reply.json


def test_garbage_fault_body_can_be_chosen(server: FakeOctanistServer) -> None:
    server.inject("garbage", body="oops", status=502)
    reply = call(server, "GET", "/api/leads")
    assert (reply.status, reply.body) == (502, b"oops")


def test_truncated_fault_sends_half_the_promised_body_and_closes(server: FakeOctanistServer) -> None:
    server.add_leads(3)
    server.inject("truncated")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/api/leads", headers={"X-API-KEY": KEY})
        response = conn.getresponse()
        promised = int(response.getheader("Content-Length") or 0)
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
    finally:
        conn.close()
    assert promised > 0
    assert len(caught.value.partial) == promised // 2
    assert call(server, "GET", "/api/leads").status == 200
    assert server.connections_opened == 2


def test_truncated_fault_still_processes_the_request(server: FakeOctanistServer) -> None:
    server.inject("truncated", method="POST", path="/api/leads")
    with pytest.raises(http.client.IncompleteRead):
        call(server, "POST", "/api/leads", {"name": "Ada"})
    assert len(server.leads) == 1


def test_drop_fault_closes_without_answering_or_processing(server: FakeOctanistServer) -> None:
    server.inject("drop")
    with pytest.raises(http.client.RemoteDisconnected):
        call(server, "POST", "/api/leads", {"name": "Ada"})
    assert server.request_count("POST", "/api/leads") == 1
    assert server.leads == []


def test_drop_fault_with_process_takes_effect_before_closing(server: FakeOctanistServer) -> None:
    server.inject("drop", process=True)
    with pytest.raises(http.client.RemoteDisconnected):
        call(server, "POST", "/api/leads", {"name": "Ada"})
    assert [lead["name"] for lead in server.leads] == ["Ada"]


def test_json_fault_sends_any_payload(server: FakeOctanistServer) -> None:
    server.inject("json", payload={"success": False})
    server.inject("json", payload={"success": True, "data": "not a list"}, status=201)
    first = call(server, "GET", "/api/leads")
    second = call(server, "GET", "/api/leads")
    assert (first.status, first.json) == (200, {"success": False})
    assert (second.status, second.json) == (201, {"success": True, "data": "not a list"})
    assert first.headers["Content-Type"].startswith("application/json")


def test_every_fault_kind_is_documented_and_injectable(server: FakeOctanistServer) -> None:
    assert set(FAULT_KINDS) == {
        "status", "delay", "garbage", "truncated", "drop", "json",
        "drip", "unsorted", "corrupt_lead", "wrong_lead", "nested", "envelope", "echo_key", "repeat_pages",
        "transform", "huge", "mislabelled",
    }  # fmt: skip
    docs = (REPO_ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    for kind in FAULT_KINDS:
        assert f"``{kind}``" in (FakeOctanistServer.inject.__doc__ or ""), kind
        assert f"| `{kind}` |" in docs, kind


@pytest.mark.parametrize(
    ("kind", "options", "error", "match"),
    [
        ("explode", {}, ValueError, "Unknown fault"),
        ("status", {}, TypeError, "missing status"),
        ("delay", {}, TypeError, "missing seconds"),
        ("json", {}, TypeError, "missing payload"),
        ("status", {"status": 500, "retry": 3}, TypeError, "unknown retry"),
        ("status", {"status": 99}, ValueError, "HTTP status code"),
        ("delay", {"seconds": -1}, ValueError, "non-negative"),
        ("status", {"status": 429, "retry_after": []}, TypeError, "retry_after"),
    ],
)
def test_inject_rejects_bad_faults(
    server: FakeOctanistServer, kind: str, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        server.inject(kind, **options)
    assert server.pending_faults == []


def test_inject_rejects_a_count_below_one(server: FakeOctanistServer) -> None:
    with pytest.raises(ValueError, match="count"):
        server.inject("status", status=500, count=0)


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def start_cli(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the CLI; return the process and its base URL once it is listening."""
    url_file = tmp_path / "url.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_octanist.testing", "--url-file", str(url_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while not url_file.exists():
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"CLI exited early with {process.returncode}: {stderr}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("CLI never wrote its --url-file within 30 s")
        time.sleep(0.02)
    return process, url_file.read_text().strip()


def cli_request(url: str, method: str, path: str, key: str) -> Any:
    request = urllib.request.Request(url + path, method=method, headers={"X-API-KEY": key})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def stop_cli(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    try:
        stdout, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("CLI did not exit within 10 s of SIGINT")
    return process.returncode, stdout


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_cli_serves_until_sigint_and_exits_zero(tmp_path: Path) -> None:
    process, url = start_cli(tmp_path, "--api-key", "cli-key", "--leads", "3")
    try:
        assert re.match(r"^http://127\.0\.0\.1:\d+/api$", url)
        assert cli_request(url, "POST", "/check", "cli-key") == {"success": True}
        assert len(cli_request(url, "GET", "/leads", "cli-key")["data"]) == 3
    finally:
        returncode, stdout = stop_cli(process)
    assert returncode == 0
    assert url in stdout
    connection = json.loads(re.search(r"AIRFLOW_CONN_OCTANIST_DEFAULT='(.*)'", stdout).group(1))  # type: ignore[union-attr]
    assert connection == {"conn_type": "octanist", "host": url, "password": "cli-key"}


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGTERM")
def test_cli_prints_a_random_key_and_wins_the_lead_after_the_delay(tmp_path: Path) -> None:
    process, url = start_cli(tmp_path, "--lead-id", "lead_demo", "--win-after", "0.2")
    try:
        assert process.stdout is not None
        key = ""
        while not key:
            line = process.stdout.readline()
            assert line, "CLI output ended before it printed the API key"
            if line.startswith("API key: "):
                key = line.removeprefix("API key: ").strip()
        wait_until(
            lambda: cli_request(url, "GET", "/leads/lead_demo", key)["data"]["status"] == "won",
            timeout=10,
            message="--win-after never turned lead_demo won",
        )
        assert cli_request(url, "GET", "/leads/lead_demo", key)["data"]["value"] == 1200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0


def test_cli_win_after_needs_a_lead_id(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_octanist.testing", "--win-after", "1"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--lead-id" in result.stderr


# ----------------------------------------------------------------------------------------------
# pytest plugin
# ----------------------------------------------------------------------------------------------


def test_octanist_connection_fixture_points_the_default_connection_at_the_server(
    octanist_connection: FakeOctanistServer,
) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_OCTANIST_DEFAULT"])
    assert connection == {"conn_type": "octanist", "host": octanist_connection.url, "password": KEY}


def test_pytest_plugin_gives_each_test_a_fresh_server_and_stops_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    pytester.makepyfile(
        """
        import urllib.request

        pytest_plugins = ["airflow_provider_octanist.testing.pytest_plugin"]
        seen = []

        def test_first(octanist_server):
            octanist_server.add_lead(id="lead_1")
            request = urllib.request.Request(
                octanist_server.url + "/check", method="POST", headers={"X-API-KEY": octanist_server.api_key}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
            seen.append(octanist_server)

        def test_second(octanist_server):
            (previous,) = seen
            assert not previous.is_running
            assert octanist_server is not previous
            assert octanist_server.leads == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
