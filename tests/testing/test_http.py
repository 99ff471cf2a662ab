"""
The fake's HTTP/1.1 plumbing: connections, keep-alive, many clients and added latency (``_http``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import http.client
import threading
import time

from airflow_provider_octanist.testing import FakeOctanistServer

from .helpers import KEY, call


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
