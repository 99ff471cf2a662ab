"""Fixtures of the status trigger's tests: the fake server, the feed's ``Ticker``, hook shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from conftest import connection_json

from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.triggers._status import feed as status_feed

from .helpers import Ticker

if TYPE_CHECKING:
    from airflow_provider_octanist.testing.server import FakeOctanistServer


@pytest.fixture
def server(octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch) -> FakeOctanistServer:
    """The fake server behind ``octanist_default``, with one fast hook retry."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        connection_json(octanist_server.url, octanist_server.api_key, retry_backoff=0.01, max_retries=1),
    )
    return octanist_server


@pytest.fixture
def ticker(monkeypatch: pytest.MonkeyPatch) -> Ticker:
    clock = Ticker()
    monkeypatch.setattr(status_feed, "sleep", clock.sleep)
    return clock


@pytest.fixture
def hook_shares(monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], list[int]]:
    """Every async hook taking a share of the shared client, and every one giving it back."""
    opened: list[int] = []
    closed: list[int] = []
    original_client, original_close = OctanistAsyncHook._shared_client, OctanistAsyncHook.aclose

    async def counting_client(self: OctanistAsyncHook) -> Any:
        if self._shared is None:
            opened.append(1)
        return await original_client(self)

    async def counting_close(self: OctanistAsyncHook) -> None:
        if self._shared is not None:
            closed.append(1)
        await original_close(self)

    monkeypatch.setattr(OctanistAsyncHook, "_shared_client", counting_client)
    monkeypatch.setattr(OctanistAsyncHook, "aclose", counting_close)
    return opened, closed
