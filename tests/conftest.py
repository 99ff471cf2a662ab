"""Test set-up shared by the whole suite: a throw-away Airflow home and the fake Octanist server."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration at import time: point it at a throw-away home before anything
# imports it, so the suite never touches a developer's own Airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="octanist-tests-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.pop("AIRFLOW_CONN_OCTANIST_DEFAULT", None)
# The hooks go through the proxy the environment names (hooks/_proxies.py); the fake server is on
# 127.0.0.1, which a developer's proxy would not reach. Tests that want a proxy name their own.
for _name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
    os.environ.pop(_name, None)
    os.environ.pop(_name.lower(), None)

pytest_plugins = ["airflow_provider_octanist.testing.pytest_plugin"]

API_KEY = "test-api-key-0123456789"


def _async_transports() -> list[str]:
    from airflow_provider_octanist.hooks._transport.shared_client import _aiohttp_transport_for

    return ["aiohttp", "httpx"] if _aiohttp_transport_for(None) else ["httpx"]


ASYNC_TRANSPORTS = _async_transports()


def _has_common_messaging() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("airflow.providers.common.messaging") is not None
    except ImportError:
        return False


HAS_COMMON_MESSAGING = _has_common_messaging()
"""Whether apache-airflow-providers-common-messaging (MessageQueueTrigger) is installed here."""
"""What the async hook can send through here: aiohttp where it is installed, httpx's transport always."""


@pytest.fixture(params=ASYNC_TRANSPORTS)
def async_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test's async hooks on each transport they can use here (``aiohttp``, ``httpx``)."""
    from airflow_provider_octanist.hooks._transport import shared_client

    monkeypatch.setattr(shared_client, "PREFER_AIOHTTP", request.param == "aiohttp")
    return str(request.param)


@pytest.fixture
def airflow_home() -> Path:
    """The suite's throw-away ``AIRFLOW_HOME``."""
    return _AIRFLOW_HOME


def connection_json(url: str, api_key: str = API_KEY, **extra: object) -> str:
    """The ``AIRFLOW_CONN_...`` JSON of an Octanist connection."""
    conn: dict[str, object] = {"conn_type": "octanist", "host": url, "password": api_key}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def first_trigger_event(trigger: Any) -> Any:
    """Run ``trigger`` in a fresh event loop until its first event; return that event's payload."""

    async def first() -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError(f"{type(trigger).__name__} ended without an event")

    return asyncio.run(first())


@pytest.fixture
def octanist_conn(octanist_server, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    """Point ``octanist_default`` at the running fake server (fast retries); returns the conn id."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        connection_json(octanist_server.url, octanist_server.api_key, retry_backoff=0.01),
    )
    return "octanist_default"
