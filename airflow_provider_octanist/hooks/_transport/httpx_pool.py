"""
The httpx transport of the shared client where aiohttp is not installed: requests spread over several
small connection pools of httpx's own transport, since one large pool costs more CPU per request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx

from airflow_provider_octanist.hooks._transport.body import ACCEPT_ENCODING, read_body

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

    from airflow_provider_octanist._api import Call, Settings
    from airflow_provider_octanist.hooks._transport.protocol import Exchange


class PooledTransport(httpx.AsyncBaseTransport):
    """
    Spread requests over ``pools`` small connection pools; requests beyond their capacity wait here.

    Waiting here costs nothing per waiting request, unlike waiting in httpcore's pool queue, which
    is walked for every request that starts or ends.

    :param verify: TLS context (or ``False``) shared by the pools.
    :param pools: how many pools.
    :param per_pool: connections of each pool.
    :param proxy: the proxy every connection goes through, if any.
    """

    def __init__(
        self, verify: ssl.SSLContext | bool, pools: int, per_pool: int, *, proxy: httpx.Proxy | None = None
    ) -> None:
        if pools < 1 or per_pool < 1:
            raise ValueError(f"A pooled transport needs at least one connection, got {pools} x {per_pool}.")
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        self._pools = [
            httpx.AsyncHTTPTransport(verify=verify, limits=limits, proxy=proxy) for _ in range(pools)
        ]
        self._busy = [0] * pools
        self._slots = asyncio.Semaphore(pools * per_pool)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the least busy pool once a connection is free."""
        await self._slots.acquire()
        index = min(range(len(self._pools)), key=self._busy.__getitem__)
        self._busy[index] += 1
        slot = _Slot(self, index)
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            slot.release()
            raise
        # The connection goes back to its pool when the body has been read or the response closed.
        response.stream = _ReleasingStream(response.stream, slot)
        return response

    def _release(self, index: int) -> None:
        self._busy[index] -= 1
        self._slots.release()

    async def exchange(self, client: httpx.AsyncClient, call: Call, settings: Settings) -> Exchange:
        """
        Send ``call`` as ``client`` builds it (its headers and timeouts); no cookies, auth flow or
        redirects, which this API never uses.
        """
        request = client.build_request(
            call.method,
            settings.url(call.path),
            params=call.params,
            json=call.body,
            headers=settings.headers(with_body=call.body is not None),
        )
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING
        response = await self.handle_async_request(request)
        response.request = request
        try:
            status, headers = response.status_code, response.headers
            return status, headers, await read_body(response.aiter_raw(), status, headers, call, settings)
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close every pool's connections."""
        for pool in self._pools:
            await pool.aclose()


class _Slot:
    """One request's place in a pool of :class:`PooledTransport`, given back once however often asked."""

    __slots__ = ("_index", "_released", "_transport")

    def __init__(self, transport: PooledTransport, index: int) -> None:
        self._transport = transport
        self._index = index
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._transport._release(self._index)


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that frees its request slot when it is closed."""

    def __init__(self, stream: Any, slot: _Slot) -> None:
        self._stream = stream
        self._slot = slot

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._slot.release()
