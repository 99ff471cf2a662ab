"""The fake's hostile answers, each shown over real loopback HTTP with stdlib clients only."""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_octanist.testing import FakeOctanistServer

pytest_plugins = ["airflow_provider_octanist.testing.pytest_plugin"]

KEY = "test-api-key"


def fetch(
    server: FakeOctanistServer, method: str, path: str, *, key: str = KEY, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One request on a fresh connection; return status and raw body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, headers={"X-API-KEY": key})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def get_json(server: FakeOctanistServer, path: str, **kwargs: Any) -> Any:
    status, body = fetch(server, "GET", path, **kwargs)
    assert status == 200, body[:200]
    return json.loads(body)


def ids(payload: Any) -> list[str]:
    return [lead["id"] for lead in payload["data"]]


@pytest.fixture
def server(octanist_server: FakeOctanistServer) -> FakeOctanistServer:
    return octanist_server


def add_out_of_order(server: FakeOctanistServer, n: int) -> list[str]:
    """Add ``n`` leads whose ``updatedAt`` decreases with insertion order; return their ids."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [server.add_lead(updatedAt=start - timedelta(minutes=i))["id"] for i in range(n)]


# 1. A list that ignores sort=updatedAt:asc -------------------------------------------------------


def test_unsorted_ignores_the_requested_sort_in_insertion_order(server: FakeOctanistServer) -> None:
    inserted = add_out_of_order(server, 5)
    assert ids(get_json(server, "/api/leads?sort=updatedAt:asc")) == inserted[::-1]
    server.inject("unsorted", count=None, method="GET", path="/api/leads")
    for _ in range(2):
        assert ids(get_json(server, "/api/leads?sort=updatedAt:asc")) == inserted
    assert server.pending_faults[0].count is None
    server.clear_faults()
    assert ids(get_json(server, "/api/leads?sort=updatedAt:asc")) == inserted[::-1]


def test_unsorted_reversed_and_shuffled_by_seed_page_like_the_real_list(server: FakeOctanistServer) -> None:
    inserted = add_out_of_order(server, 20)
    server.inject("unsorted", count=2, order="reversed")
    assert ids(get_json(server, "/api/leads?sort=updatedAt:asc&limit=5")) == inserted[::-1][:5]
    assert ids(get_json(server, "/api/leads?sort=updatedAt:asc&limit=5&page=2")) == inserted[::-1][5:10]
    server.inject("unsorted", count=2, order="shuffled", seed=7)
    first = ids(get_json(server, "/api/leads?sort=updatedAt:asc&limit=100"))
    second = ids(get_json(server, "/api/leads?sort=updatedAt:asc&limit=100"))
    assert first == second
    assert sorted(first) == sorted(inserted)
    assert first not in (inserted, inserted[::-1])


# 2. Leads dated in the future ------------------------------------------------------------------


def test_a_lead_may_be_dated_after_the_servers_clock_in_meta_timestamp(server: FakeOctanistServer) -> None:
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    server.add_lead(id="lead_future", updatedAt=future)
    payload = get_json(server, "/api/leads?sort=updatedAt:asc")
    clock = datetime.fromisoformat(payload["meta"]["timestamp"].replace("Z", "+00:00"))
    updated = datetime.fromisoformat(payload["data"][0]["updatedAt"].replace("Z", "+00:00"))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", payload["meta"]["timestamp"])
    assert abs(clock - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert updated - clock > timedelta(minutes=55)


# 3. A slow-drip answer -------------------------------------------------------------------------


def raw_exchange(server: FakeOctanistServer, request: bytes, *, read_timeout: float) -> tuple[bytes, float]:
    """Send ``request`` on a raw socket and read to EOF; each read may take ``read_timeout`` at most."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=read_timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - started


CHECK = b"POST /api/check HTTP/1.1\r\nHost: x\r\nX-API-KEY: test-api-key\r\nConnection: close\r\n\r\n"


def test_drip_sends_the_body_a_byte_per_interval_so_no_read_times_out(server: FakeOctanistServer) -> None:
    interval = 0.05
    server.inject("drip", interval=interval, path="/api/check")
    received, elapsed = raw_exchange(server, CHECK, read_timeout=0.5)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"success": True}
    # One pause before every byte of the body: the whole answer cannot be faster than this (less
    # a margin for timer granularity).
    assert elapsed >= 0.9 * interval * len(body)


def test_drip_can_trickle_the_status_line_and_headers_too(server: FakeOctanistServer) -> None:
    interval, chunk = 0.01, 8
    server.inject("drip", interval=interval, chunk=chunk, headers=True)
    received, elapsed = raw_exchange(server, CHECK, read_timeout=0.5)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert json.loads(received.partition(b"\r\n\r\n")[2]) == {"success": True}
    assert elapsed >= 0.9 * interval * math.ceil(len(received) / chunk)


def test_drip_works_with_http_client_and_a_short_read_timeout(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.inject("drip", interval=0.001, chunk=16, path="/api/leads/lead_1")
    assert get_json(server, "/api/leads/lead_1", timeout=0.5)["data"]["id"] == "lead_1"


# 4. A malformed lead in the list ---------------------------------------------------------------


def test_corrupt_lead_overwrites_fields_of_one_lead_of_the_page(server: FakeOctanistServer) -> None:
    add_out_of_order(server, 3)
    server.inject("corrupt_lead", fields={"id": 42, "status": None}, index=1)
    payload = get_json(server, "/api/leads?sort=updatedAt:asc")
    assert payload["data"][1]["id"] == 42
    assert payload["data"][1]["status"] is None
    assert all(isinstance(lead["id"], str) for i, lead in enumerate(payload["data"]) if i != 1)
    assert all(isinstance(lead["id"], str) for lead in get_json(server, "/api/leads")["data"])


def test_corrupt_lead_on_a_single_lead_answer(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.inject("corrupt_lead", fields={"status": ["won"]}, path="/api/leads/lead_1")
    assert get_json(server, "/api/leads/lead_1")["data"]["status"] == ["won"]
    assert server.lead("lead_1")["status"] == "open"


# 5. Microsecond timestamps ---------------------------------------------------------------------


def test_microsecond_precision_keeps_many_leads_on_one_microsecond_apart_from_the_next() -> None:
    with FakeOctanistServer(timestamp_precision="us") as server:
        stamp = "2026-01-01T00:00:00.123456Z"
        server.add_leads(150, updatedAt=stamp)
        server.add_lead(id="lead_next", updatedAt="2026-01-01T00:00:00.123457Z")
        fresh = server.add_lead()
        assert re.fullmatch(r".*\.\d{6}Z", fresh["createdAt"])

        def total(query: str) -> int:
            return int(get_json(server, "/api/leads?limit=100" + query)["meta"]["pagination"]["total"])

        assert total(f"&updatedAt[gte]={stamp}&updatedAt[lt]=2026-01-01T00:00:00.123457Z") == 150
        assert total(f"&updatedAt[gt]={stamp}&updatedAt[lt]=2026-01-02") == 1
        assert total("&updatedAt[gt]=2026-01-01T00:00:00.123455Z&updatedAt[lt]=2026-01-02") == 151
        payload = get_json(server, f"/api/leads?updatedAt[gte]={stamp}&sort=updatedAt:asc&limit=1")
        assert payload["data"][0]["updatedAt"] == stamp
        assert re.fullmatch(r".*\.\d{6}Z", payload["meta"]["timestamp"])


def test_millisecond_precision_stays_the_default(server: FakeOctanistServer) -> None:
    lead = server.add_lead(updatedAt="2026-01-01T00:00:00.123456Z")
    assert lead["updatedAt"] == "2026-01-01T00:00:00.123Z"
    with pytest.raises(ValueError, match="timestamp_precision"):
        FakeOctanistServer(timestamp_precision="ns")


# 6. GET /leads/{id} answered with another lead -------------------------------------------------


def test_wrong_lead_answers_with_another_stored_lead(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.add_lead(id="lead_2")
    server.add_lead(id="lead_3")
    server.inject("wrong_lead", path="/api/leads/lead_1")
    assert get_json(server, "/api/leads/lead_1")["data"]["id"] == "lead_2"
    server.inject("wrong_lead", lead_id="lead_3")
    assert get_json(server, "/api/leads/lead_1")["data"]["id"] == "lead_3"
    assert get_json(server, "/api/leads/lead_1")["data"]["id"] == "lead_1"


def test_wrong_lead_with_no_other_lead_changes_the_id(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1", name="Ada")
    server.inject("wrong_lead")
    data = get_json(server, "/api/leads/lead_1")["data"]
    assert (data["id"], data["name"]) == ("lead_1_other", "Ada")


# 7. Deeply nested JSON -------------------------------------------------------------------------


def test_nested_answers_json_nested_deeper_than_a_recursive_parser_goes(server: FakeOctanistServer) -> None:
    server.inject("nested", path="/api/leads")
    status, body = fetch(server, "GET", "/api/leads")
    assert status == 200
    assert body.startswith(b'{"success":true,"data":[[[')
    assert body.count(b"[") == body.count(b"]") == 100_000
    with pytest.raises(RecursionError):
        json.loads(body)
    server.inject("nested", depth=3, status=500)
    assert fetch(server, "GET", "/api/leads") == (500, b'{"success":true,"data":[[[]]]}')


# 8. meta null or not an object -----------------------------------------------------------------


@pytest.mark.parametrize("meta", [None, "soon", [1, 2]])
def test_envelope_sets_meta_to_any_json_value(server: FakeOctanistServer, meta: Any) -> None:
    server.add_leads(2)
    server.inject("envelope", meta=meta, path="/api/leads")
    payload = get_json(server, "/api/leads")
    assert payload["meta"] == meta
    assert payload["success"] is True
    assert len(payload["data"]) == 2


def test_envelope_can_remove_keys(server: FakeOctanistServer) -> None:
    server.inject("envelope", remove=("meta", "success"))
    assert set(get_json(server, "/api/leads")) == {"data"}


# 9. An error that echoes the key ---------------------------------------------------------------


def test_echo_key_puts_the_sent_key_in_the_error_message(server: FakeOctanistServer) -> None:
    server.inject("echo_key")
    status, body = fetch(server, "GET", "/api/leads", key="sk-live-0123456789")
    assert status == 401
    error = json.loads(body)["error"]
    assert error == {"code": "UNAUTHORIZED", "message": "Invalid API key: sk-live-0123456789", "details": {}}
    server.inject("echo_key", status=403, message="key {key} may not do this")
    status, body = fetch(server, "GET", "/api/leads")
    assert (status, json.loads(body)["error"]["message"]) == (403, f"key {KEY} may not do this")
    assert all(r.headers["x-api-key"] == "***" for r in server.requests)


# 11. Pages that repeat all but their first lead ------------------------------------------------


def test_repeat_pages_serves_page_one_without_its_first_lead_on_every_later_page(
    server: FakeOctanistServer,
) -> None:
    add_out_of_order(server, 10)
    server.inject("repeat_pages", count=None, method="GET", path="/api/leads")
    query = "/api/leads?sort=updatedAt:asc&limit=3"
    page_one = get_json(server, query)
    assert len(page_one["data"]) == 3
    for page in (2, 3, 50):
        payload = get_json(server, f"{query}&page={page}")
        assert ids(payload) == ids(page_one)[1:]
        assert payload["meta"]["pagination"]["page"] == page
        assert payload["meta"]["pagination"]["hasMore"] is True


def test_repeat_pages_with_fresh_leads_mixes_each_pages_own_leads_with_page_ones(
    server: FakeOctanistServer,
) -> None:
    add_out_of_order(server, 12)
    server.inject("repeat_pages", count=None, method="GET", path="/api/leads", fresh=1)
    query = "/api/leads?sort=updatedAt:asc&limit=4"
    page_one = ids(get_json(server, query))
    unrepeated = [ids(get_json(server, f"{query}&page={page}")) for page in (2, 3)]
    server.clear_faults()
    real = [ids(get_json(server, f"{query}&page={page}")) for page in (2, 3)]
    for shown, own in zip(unrepeated, real, strict=True):
        assert shown == own[:1] + page_one[1:]


# 12. NaN and Infinity in a lead ----------------------------------------------------------------


def test_corrupt_lead_with_non_finite_floats_sends_bare_nan_and_infinity(server: FakeOctanistServer) -> None:
    server.add_leads(2)
    server.inject("corrupt_lead", fields={"value": float("nan")})
    server.inject("corrupt_lead", fields={"value": float("-inf")}, index=-1)
    status, body = fetch(server, "GET", "/api/leads")
    assert status == 200
    assert b'"value":NaN' in body
    _, body = fetch(server, "GET", "/api/leads")
    assert b'"value":-Infinity' in body

    def strict(token: str) -> None:
        raise ValueError(f"not strict JSON: {token}")

    with pytest.raises(ValueError, match="not strict JSON"):
        json.loads(body, parse_constant=strict)


# 13. success as a string; a huge error message -------------------------------------------------


def test_envelope_success_as_the_string_false(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.inject("envelope", success="false")
    payload = get_json(server, "/api/leads/lead_1")
    assert payload["success"] == "false"
    assert payload["data"]["id"] == "lead_1"


def test_status_fault_sends_an_error_message_of_several_megabytes(server: FakeOctanistServer) -> None:
    server.inject("status", status=500, message="x" * 5_000_000)
    status, body = fetch(server, "GET", "/api/leads")
    assert status == 500
    assert len(json.loads(body)["error"]["message"]) == 5_000_000


# The general mechanism -------------------------------------------------------------------------


def test_transform_rewrites_the_payload_or_sends_exact_bytes(server: FakeOctanistServer) -> None:
    server.add_lead(id="lead_1")
    server.inject("transform", function=lambda payload: {**payload, "data": [payload["data"]]})
    assert get_json(server, "/api/leads/lead_1")["data"][0]["id"] == "lead_1"
    server.inject("transform", function=lambda payload: '{"success": true, "data": [1e999]}')
    assert fetch(server, "GET", "/api/leads") == (200, b'{"success": true, "data": [1e999]}')


def test_answering_faults_still_let_the_request_take_effect_and_check_the_key(
    server: FakeOctanistServer,
) -> None:
    server.inject("envelope", success="false", count=2)
    status, _ = fetch(server, "GET", "/api/leads", key="wrong")
    assert status == 401
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", "/api/leads", body=b'{"name": "Ada"}', headers={"X-API-KEY": KEY})
        payload = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert payload["success"] == "false"
    assert server.lead(payload["data"]["id"])["name"] == "Ada"


@pytest.mark.parametrize(
    ("kind", "options", "match"),
    [
        ("drip", {}, "missing interval"),
        ("drip", {"interval": -1}, "interval"),
        ("drip", {"interval": 0.1, "chunk": 0}, "chunk"),
        ("nested", {"depth": 0}, "depth"),
        ("unsorted", {"order": "random"}, "order"),
        ("corrupt_lead", {"fields": [("id", 1)]}, "fields"),
        ("corrupt_lead", {"fields": {}, "index": "1"}, "index"),
        ("transform", {"function": "upper"}, "callable"),
        ("envelope", {"succes": "false"}, "unknown succes"),
        ("huge", {}, "missing decoded_bytes"),
        ("huge", {"decoded_bytes": 10}, "decoded_bytes"),
        ("mislabelled", {"encodng": "gzip"}, "unknown encodng"),
    ],
)
def test_inject_rejects_bad_options_of_the_hostile_kinds(
    server: FakeOctanistServer, kind: str, options: dict[str, Any], match: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        server.inject(kind, **options)
    assert server.pending_faults == []


def test_stop_does_not_wait_for_a_drip_in_progress() -> None:
    server = FakeOctanistServer().start()
    server.inject("drip", interval=30)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(CHECK)
        deadline = time.monotonic() + 5
        while server.request_count() == 0:
            assert time.monotonic() < deadline, "the request never reached the server (waited 5 s)"
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
    finally:
        sock.close()


def test_huge_sends_a_valid_json_body_of_the_size_asked(server: FakeOctanistServer) -> None:
    server.inject("huge", decoded_bytes=3 * 1024 * 1024 + 5)

    status, body = fetch(server, "POST", "/api/stats")

    assert status == 200
    assert len(body) == 3 * 1024 * 1024 + 5
    assert json.loads(body) == {"success": True, "data": {}}
    assert server.streamed_bytes() == [len(body)]


def test_huge_with_gzip_is_a_valid_gzip_member_a_thousandth_of_its_size(server: FakeOctanistServer) -> None:
    import gzip

    server.inject("huge", decoded_bytes=8 * 1024 * 1024, gzip=True)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", "/api/stats", headers={"X-API-KEY": KEY})
        response = conn.getresponse()
        wire = response.read()
        assert response.getheader("Content-Encoding") == "gzip"
        assert int(response.getheader("Content-Length")) == len(wire)
    finally:
        conn.close()

    assert len(wire) < 8 * 1024 * 1024 // 500
    decoded = gzip.decompress(wire)  # checks the CRC and the size in the trailer too
    assert len(decoded) == 8 * 1024 * 1024
    assert json.loads(decoded) == {"success": True, "data": {}}


@pytest.mark.parametrize("size", [2 * 1024 * 1024 + 7, 2 * 1024 * 1024 + 8, 2 * 1024 * 1024 + 9])
def test_huge_with_values_fills_data_with_empty_objects_every_three_bytes(
    server: FakeOctanistServer, size: int
) -> None:
    import gzip

    server.inject("huge", decoded_bytes=size, values=True, gzip=True)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", "/api/stats", headers={"X-API-KEY": KEY})
        wire = conn.getresponse().read()
    finally:
        conn.close()

    decoded = gzip.decompress(wire)
    assert len(decoded) == size
    payload = json.loads(decoded)
    assert payload["success"] is True
    assert payload["data"] == [{}] * len(payload["data"])
    assert len(payload["data"]) > (size - 40) // 3


def test_mislabelled_says_gzip_over_a_plain_json_body(server: FakeOctanistServer) -> None:
    lead = server.add_lead()
    server.inject("mislabelled")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", f"/api/leads/{lead['id']}", headers={"X-API-KEY": KEY})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()

    assert response.getheader("Content-Encoding") == "gzip"
    assert json.loads(body)["data"]["id"] == lead["id"]


def test_strict_dates_refuse_a_time_filter_finer_than_milliseconds() -> None:
    with FakeOctanistServer(api_key=KEY, strict_dates=True) as strict:
        status, body = fetch(strict, "GET", "/api/leads?updatedAt%5Bgte%5D=2026-03-10T12:00:00.123456Z")
        assert status == 400
        assert json.loads(body)["error"]["code"] == "INVALID_DATE"
        assert "at most milliseconds" in json.loads(body)["error"]["message"]
        assert get_json(strict, "/api/leads?updatedAt%5Bgte%5D=2026-03-10T12:00:00.123Z")["data"] == []


def test_dates_finer_than_milliseconds_are_read_when_not_strict(server: FakeOctanistServer) -> None:
    assert get_json(server, "/api/leads?updatedAt%5Bgte%5D=2026-03-10T12:00:00.123456Z")["data"] == []
