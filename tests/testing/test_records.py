"""
What the fake remembers of each request, with the API key redacted (``_records``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from airflow_provider_octanist.testing import FakeOctanistServer, RecordedRequest

from .helpers import KEY, call

if TYPE_CHECKING:
    import pytest


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
