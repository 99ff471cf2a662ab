"""
The aiohttp transport: each aiohttp failure raised as the httpx error httpx's own transport raises
for it (a table, subclasses first), and at least one connection asked for.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from conftest import ASYNC_TRANSPORTS

pytestmark = pytest.mark.skipif(
    "aiohttp" not in ASYNC_TRANSPORTS, reason="aiohttp (3.10 or later) is not installed"
)


def _aiohttp_failures() -> list[tuple[BaseException, type[httpx.TransportError]]]:
    """Each aiohttp failure the transport meets and the httpx error it becomes (none where no aiohttp)."""
    if "aiohttp" not in ASYNC_TRANSPORTS:
        return []
    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("octanist.test", 443, True, True, None, None, None)
    return [
        (aiohttp.ConnectionTimeoutError(), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError(), httpx.ReadTimeout),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ClientProxyConnectionError(key, OSError("refused")), httpx.ProxyError),
        (aiohttp.ClientConnectorError(key, OSError("refused")), httpx.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientError("other"), httpx.TransportError),
    ]


@pytest.mark.parametrize(("failure", "kind"), _aiohttp_failures(), ids=lambda v: type(v).__name__)
def test_an_aiohttp_failure_becomes_the_httpx_error_of_its_kind_named_by_its_type_only(
    failure: BaseException, kind: type[httpx.TransportError]
) -> None:
    from airflow_provider_octanist.hooks._transport.aiohttp_transport import as_httpx_error

    error = as_httpx_error(failure, None)

    assert type(error) is kind
    assert str(error) == type(failure).__name__


def test_an_aiohttp_transport_needs_at_least_one_connection() -> None:
    from airflow_provider_octanist.hooks._transport.aiohttp_transport import AiohttpTransport

    with pytest.raises(ValueError, match="at least one connection"):
        AiohttpTransport(False, 0)
