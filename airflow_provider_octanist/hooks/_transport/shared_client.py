"""
One ``httpx.AsyncClient`` per event loop and connection, shared by every async hook that uses them.

A triggerer runs all its triggers in one event loop. With a client each, a thousand triggers would
each pay ~20 ms of CPU and ~0.8 MB for a TLS context (loading the CA bundle) and keep their own
connections, so every poll of a slow-polling trigger would open a new connection and handshake.
Shared, they cost one client whose connections stay warm. The hooks take a share on first use
and give it back in ``aclose()``; the last one to leave closes the client.

Where aiohttp is installed the client sends through one aiohttp session
(``hooks/_transport/aiohttp_transport.py``), at a third of the CPU per request. Otherwise it spreads requests
over several small connection pools of httpx's own transport (``httpx_pool.PooledTransport``): httpcore
checks every connection of a pool, with a system call each, whenever a request starts or ends, so
one large pool costs more CPU per request than all the HTTP parsing.

The client goes through the proxy the environment names for the connection's base URL, chosen by
the sync hook's rule (``hooks/_proxies.py``): httpx reads those variables only for a client without a
transport of its own.

Imported by the async hook on first use: it imports httpx, which DAG files never need.
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import TYPE_CHECKING, NamedTuple

import httpx

from airflow_provider_octanist.hooks._transport.httpx_pool import PooledTransport

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from airflow_provider_octanist._api import Call, Settings
    from airflow_provider_octanist.hooks._transport.protocol import Exchange, Transport

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

    The hooks hand each call to the transport (``exchange``), not to ``client.send``, which would
    add, per request, the cookie jar's bookkeeping (through ``urllib``), the auth and redirect
    machinery and a log record, about a sixth of a request's CPU, for features an API called with a
    key never uses. The client is what ``get_client()`` gives to code of its own.
    """

    __slots__ = ("client", "transport", "users")

    def __init__(self, client: httpx.AsyncClient, transport: Transport) -> None:
        self.client = client
        self.transport = transport
        self.users = 0

    async def exchange(self, call: Call, settings: Settings) -> Exchange:
        """
        Send ``call``; return status, headers and body, read within the size cap (``body.py``).

        :raises httpx.HTTPError: what httpx's transport raises for the failure, on either transport.
        """
        return await self.transport.exchange(self.client, call, settings)


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

    The transport is aiohttp's where it is installed and can take the proxy (see
    ``hooks/_transport/aiohttp_transport.py``), httpx's own otherwise; the hooks cannot tell them apart.

    :param settings: the connection's settings; the API key stays out of the client and travels
        in each request's headers.
    """
    from airflow_provider_octanist.hooks._proxies import ASYNC_PROXIES, environment_proxy

    verify = ssl_context(settings.verify)
    proxy = environment_proxy(settings, ASYNC_PROXIES)
    transport: Transport
    if PREFER_AIOHTTP and _aiohttp_transport_for(proxy):
        from airflow_provider_octanist.hooks._transport.aiohttp_transport import AiohttpTransport

        timeouts = (settings.connect_timeout, settings.read_timeout)
        transport = AiohttpTransport(verify, POOLS * CONNECTIONS_PER_POOL, proxy=proxy, timeouts=timeouts)
    else:
        transport = PooledTransport(
            verify, POOLS, CONNECTIONS_PER_POOL, proxy=None if proxy is None else httpx.Proxy(proxy)
        )
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        follow_redirects=False,
        transport=transport,
    )
    return SharedClient(client, transport)


PREFER_AIOHTTP = True
"""Send through aiohttp where it is installed; tests and benchmarks turn it off to measure httpx alone."""


def _aiohttp_transport_for(proxy: str | None) -> bool:
    """Whether aiohttp is installed, and its transport can go through ``proxy``."""
    try:
        from airflow_provider_octanist.hooks._transport.aiohttp_transport import usable
    except ImportError:  # no aiohttp (or a part of it missing): httpx's transport
        return False
    return usable(proxy)


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
