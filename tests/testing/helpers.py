"""
What the fake server's tests share: a stdlib HTTP client with readable answers, waits, paths.

The ``server`` fixture is in ``conftest.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import airflow_provider_octanist.testing

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer


KEY = "test-api-key"
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REQUEST_ID_RE = re.compile(r"^req_[0-9a-f]{12}$")
REPO_ROOT = Path(airflow_provider_octanist.testing.__file__).resolve().parents[2]


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
