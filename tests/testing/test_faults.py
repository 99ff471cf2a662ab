"""
Fault injection: which requests a fault matches, in which order, and what ``inject`` refuses (``_faults``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_octanist.testing import FAULT_KINDS, FakeOctanistServer, Fault

from .helpers import REPO_ROOT, call


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
