"""
httpx's pooled transport: requests spread over several small pools, each connection kept alive,
and at least one connection asked for.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

from airflow_provider_octanist.hooks._transport import shared_client as shared_clients
from airflow_provider_octanist.hooks._transport.httpx_pool import PooledTransport
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


def test_concurrent_requests_are_spread_over_the_pools(
    octanist_server: FakeOctanistServer, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shared_clients, "PREFER_AIOHTTP", False)  # the pools are httpx's transport's
    monkeypatch.setattr(shared_clients, "POOLS", 3)
    monkeypatch.setattr(shared_clients, "CONNECTIONS_PER_POOL", 1)
    octanist_server.latency = 0.05

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            for _ in range(3):  # three rounds of three at once: one connection per pool, kept alive
                await asyncio.gather(*(hook.get_lead(lead) for _ in range(3)))

    asyncio.run(scenario())
    assert octanist_server.connections_opened == 3
    assert len({request.connection_id for request in octanist_server.requests}) == 3


def test_a_pooled_transport_needs_at_least_one_connection() -> None:
    with pytest.raises(ValueError, match="at least one connection"):
        PooledTransport(False, pools=0, per_pool=2)
