"""
How each fault kind answers (``_fault_answers``): error statuses, delays, garbage, truncated and
dropped answers.

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import http.client
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import pytest

from .helpers import KEY, call

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


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
