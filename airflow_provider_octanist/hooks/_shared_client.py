"""
One ``httpx.AsyncClient`` per event loop and connection, shared by every async hook that uses them.

A triggerer runs all its triggers in one event loop. With a client each, a thousand triggers would
each pay ~20 ms of CPU and ~0.8 MB for a TLS context (loading the CA bundle) and keep their own
connections, so every poll of a slow-polling trigger would open a new connection and handshake.
Shared, they cost one client whose connections stay warm. The hooks take a share on first use
and give it back in ``aclose()``; the last one to leave closes the client.

The client spreads requests over several small connection pools (:class:`PooledTransport`):
httpcore checks every connection of a pool, with a system call each, whenever a request starts
or ends, so one large pool costs more CPU per request than all the HTTP parsing.

The client goes through the proxy the environment names for the connection's base URL, chosen by
the sync hook's rule (``hooks/_base.py``): httpx reads those variables only for a client without a
transport of its own.

Imported by the async hook on first use: it imports httpx, which DAG files never need.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from airflow_provider_octanist._api import Settings

POOLS = 16
"""Connection pools of one shared client."""
CONNECTIONS_PER_POOL = 2
"""Connections of each pool: 32 requests in flight at most, ~300 polls/s at 100 ms each."""


class ClientKey(NamedTuple):
    """What lets two async hooks share a client: event loop and connection settings, never the API key."""

    loop: asyncio.AbstractEventLoop
    conn_id: str
    base_url: str
    read_timeout: float
    connect_timeout: float
    verify: bool | str

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop, settings: Settings) -> ClientKey:
        """
        The key of ``settings`` in ``loop``.

        :param loop: the event loop the client will serve.
        :param settings: the connection's settings (their API key is left out).
        """
        return cls(
            loop,
            settings.conn_id,
            settings.base_url,
            settings.read_timeout,
            settings.connect_timeout,
            settings.verify,
        )


class SharedClient:
    """
    A client, its transport, and the number of hooks holding a share of them.

    The hooks build each request with the client (its headers and timeouts) and hand it to the
    transport themselves: ``client.send`` would add, per request, the cookie jar's bookkeeping
    (through ``urllib``), the auth and redirect machinery and a log record, about a sixth of a
    request's CPU, for features an API called with a key never uses.
    """

    __slots__ = ("client", "transport", "users")

    def __init__(self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport) -> None:
        self.client = client
        self.transport = transport
        self.users = 0


class Registry:
    """The shared client of each :class:`ClientKey`; nothing in it is ever logged."""

    def __init__(self) -> None:
        # A triggerer runs one loop, but tests and embedders may run loops in several threads.
        self._lock = threading.Lock()
        self._clients: dict[ClientKey, SharedClient] = {}

    def acquire(self, key: ClientKey, create: Callable[[], SharedClient]) -> SharedClient:
        """
        Return the shared client of ``key``, made by ``create`` if there is none; count one more user.

        :param key: event loop and connection settings.
        :param create: makes the shared client when ``key`` has none (or only one somebody closed).
        """
        with self._lock:
            # Clients of loops that closed before their hooks' aclose() can never be closed: drop them.
            for stale in [k for k in self._clients if k.loop.is_closed()]:
                del self._clients[stale]
            shared = self._clients.get(key)
            if shared is None or shared.client.is_closed:
                shared = self._clients[key] = create()
            shared.users += 1
            return shared

    def release(self, key: ClientKey, shared: SharedClient) -> bool:
        """
        Count one user of ``shared`` less; ``True`` when it was the last, and the caller closes it.

        :param key: the key ``shared`` was acquired with.
        :param shared: what :meth:`acquire` returned.
        """
        with self._lock:
            shared.users -= 1
            if shared.users > 0:
                return False
            # Unless it was dropped with its closed loop or replaced after somebody closed it.
            if self._clients.get(key) is shared:
                del self._clients[key]
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)


REGISTRY = Registry()


def new_client(settings: Settings) -> SharedClient:
    """
    A client for every hook of one connection in one event loop, with its transport.

    :param settings: the connection's settings; the API key stays out of the client and travels
        in each request's headers.
    """
    transport = PooledTransport(
        ssl_context(settings.verify), POOLS, CONNECTIONS_PER_POOL, proxy=_proxy(settings)
    )
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        follow_redirects=False,
        transport=transport,
    )
    return SharedClient(client, transport)


def _proxy(settings: Settings) -> httpx.Proxy | None:
    """The proxy the environment names for the connection (see ``hooks/_base.py``), as httpx takes it."""
    from airflow_provider_octanist.hooks._base import ASYNC_PROXIES, environment_proxy

    url = environment_proxy(settings, ASYNC_PROXIES)
    return None if url is None else httpx.Proxy(url)


def ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    """
    The TLS context of a connection: loaded once per client, shared by its pools.

    :param verify: ``True`` (the CA bundle httpx trusts), ``False`` (no verification) or the path
        of a CA bundle file or directory.
    """
    if verify is False:
        return False
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return httpx.create_ssl_context()


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
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._busy[index] -= 1
                self._slots.release()

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        # The connection goes back to its pool when the body has been read or the response closed.
        response.stream = _ReleasingStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        """Close every pool's connections."""
        for pool in self._pools:
            await pool.aclose()


class _ReleasingStream(httpx.AsyncByteStream):
    """A response body that frees its request slot when it is closed."""

    def __init__(self, stream: Any, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()
