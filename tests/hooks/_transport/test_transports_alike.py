"""The async hook's two transports (aiohttp where installed, httpx's own) send and fail alike."""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from conftest import ASYNC_TRANSPORTS

from airflow_provider_octanist import _api as api
from airflow_provider_octanist.hooks._transport import shared_client as shared_clients
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer
    from airflow_provider_octanist.testing._records import RecordedRequest

SENT_HEADERS = ("accept", "accept-encoding", "content-type", "content-length", "user-agent", "host")
"""The request headers both transports must send alike (the key is checked apart: it is redacted)."""


def _as_sent(request: RecordedRequest) -> dict[str, Any]:
    headers = {name: request.headers.get(name) for name in SENT_HEADERS}
    return {
        "call": (request.method, request.raw_path, request.query, request.raw_body),
        "headers": headers,
        "key_sent": request.api_key_sent,
    }


def _send_on(
    transport: str, monkeypatch: pytest.MonkeyPatch, server: FakeOctanistServer
) -> list[dict[str, Any]]:
    """Send a filtered listing and a POST with a non-ASCII JSON body on ``transport``; what arrived."""
    monkeypatch.setattr(shared_clients, "PREFER_AIOHTTP", transport == "aiohttp")
    listing = api.Call(
        "GET",
        "/leads",
        params={"status": "won", "sort": "updatedAt:asc", "updatedAt[gt]": "2026-01-02T03:04:05.678+01:00"},
    )
    creation = api.Call(
        "POST", "/leads", body={"email": "zoe@example.com", "name": "Zoë Ñandú", "value": 12.5}
    )

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            settings = await hook.get_settings()
            shared = await hook._shared_client()
            assert type(shared.transport).__name__ == (
                "AiohttpTransport" if transport == "aiohttp" else "PooledTransport"
            )
            for call in (listing, creation):
                status, _, body = await shared.exchange(call, settings)
                assert status in (200, 201), body

    server.clear_requests()
    asyncio.run(scenario())
    return [_as_sent(request) for request in server.requests]


@pytest.mark.skipif(len(ASYNC_TRANSPORTS) < 2, reason="aiohttp (3.10 or later) is not installed")
def test_both_transports_send_a_call_byte_for_byte_alike(
    octanist_server: FakeOctanistServer, connect: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    on_aiohttp = _send_on("aiohttp", monkeypatch, octanist_server)
    on_httpx = _send_on("httpx", monkeypatch, octanist_server)

    assert on_aiohttp == on_httpx
    assert [sent["call"][0] for sent in on_aiohttp] == ["GET", "POST"]
    assert all(sent["key_sent"] for sent in on_aiohttp)
    assert on_aiohttp[0]["call"][2]["updatedAt[gt]"] == ["2026-01-02T03:04:05.678+01:00"]


def test_get_client_sends_through_the_shared_transport_and_fails_as_httpx_does(
    octanist_server: FakeOctanistServer, connect: Callable[..., None], async_transport: str
) -> None:
    lead = octanist_server.add_lead()
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}/api/leads"

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            settings = await hook.get_settings()
            client = await hook.get_client()
            response = await client.get(settings.url(f"/leads/{lead['id']}"), headers=settings.headers())
            assert response.status_code == 200
            assert response.json()["data"]["id"] == lead["id"]
            with pytest.raises(httpx.ConnectError):
                await client.get(refused_url, headers=settings.headers())
            # The answer's body streams, and closing it early leaves the client usable.
            async with client.stream("GET", settings.url("/leads"), headers=settings.headers()) as streamed:
                assert streamed.status_code == 200
            again = await client.get(settings.url(f"/leads/{lead['id']}"), headers=settings.headers())
            assert again.json()["data"]["id"] == lead["id"]

    asyncio.run(scenario())
