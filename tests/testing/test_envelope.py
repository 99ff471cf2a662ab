"""
The shape of every answer: the success and error envelopes and ``meta.timestamp`` (``_envelope``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .helpers import REQUEST_ID_RE, TIMESTAMP_RE, call, parse

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


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
