"""
FakeOctanistServer's life: its address, starting, stopping and what it shows of itself (``server``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from airflow_provider_octanist.testing import FakeOctanistServer

from .helpers import KEY, call, wait_until


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
