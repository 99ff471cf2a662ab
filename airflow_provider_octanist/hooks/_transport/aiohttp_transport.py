"""
An httpx transport that sends through aiohttp: the async hook's requests at a third of the CPU.

httpx, httpcore, h11 and anyio are pure Python, and a poll through them costs 1.2-1.8 ms of CPU;
aiohttp parses HTTP in C and costs about a third of that (``make bench``, the two floor rows). The
async hook keeps speaking httpx (its requests, answers and errors, and ``get_client()``), and the
shared client sends through this transport wherever aiohttp is installed: with the HTTP, Amazon or
Google provider, in Airflow 2's ``apache-airflow``, or ``airflow-provider-octanist[aiohttp]``.

The hook's own calls go straight to aiohttp (``exchange``): building an httpx request and answer
around each would cost as much CPU as aiohttp's whole request. They are sent as httpx would send
them (the query encoded alike, the JSON body compact), and everything else is the same on both
transports: the body is read raw, a bounded piece at a time, by ``hooks/_transport/body.py`` (aiohttp
inflates nothing); every aiohttp error becomes the httpx error httpx's own transport would raise,
so ``hooks/_failures.py`` describes and retries them alike; a whole exchange stays under the hook's
deadline. ``get_client()``'s httpx client sends its requests through the same session. Proxies:
none, or an ``http://`` one (a SOCKS or ``https://`` proxy goes through httpx's transport, which
speaks them).

Imported by the shared client on first use only: DAG files never load it.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import httpx
from yarl import URL

from airflow_provider_octanist.hooks._failures import first_match
from airflow_provider_octanist.hooks._transport.body import ACCEPT_ENCODING, read_body

if TYPE_CHECKING:
    import ssl
    from collections.abc import AsyncIterator

    from airflow_provider_octanist._api import Call, Settings
    from airflow_provider_octanist.hooks._transport.protocol import Exchange


HEADER_LINE_LIMIT = 65_536
"""The longest status or header line taken, in bytes; a longer one is a protocol error."""


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    Send httpx requests through one ``aiohttp.ClientSession`` of ``connections`` kept-alive connections.

    Created in the event loop it serves. Requests beyond ``connections`` wait in aiohttp's queue,
    which wakes one waiter per freed connection whatever its length.

    :param verify: TLS context, or ``False`` for no verification.
    :param connections: connections at most, all hosts together.
    :param proxy: an ``http://`` proxy every request goes through, or ``None``.
    :param timeouts: connect and read timeouts of the hook's calls, in seconds (``exchange``).
    """

    def __init__(
        self,
        verify: ssl.SSLContext | bool,
        connections: int,
        *,
        proxy: str | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> None:
        if connections < 1:
            raise ValueError(f"An aiohttp transport needs at least one connection, got {connections}.")
        # aiohttp sends the user and password of a proxy URL to the proxy, for a tunnel or not.
        self._proxy = None if proxy is None else URL(proxy)
        self._timeout = None if timeouts is None else _timeout(*timeouts)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0, ssl=verify),
            # The body is inflated by the hook, a bounded piece at a time (hooks/_transport/body.py).
            auto_decompress=False,
            # An API called with a key has no use for cookies; the proxy comes from hooks/_proxies.py.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            timeout=_NO_TIMEOUT,
            # Header lines as long as httpx's transport takes them (aiohttp's own limit is 8 KiB).
            max_line_size=HEADER_LINE_LIMIT,
            max_field_size=HEADER_LINE_LIMIT,
        )
        # aiohttp sends an idempotent request again, at once, when a connection closes under it; the
        # hook's own policy decides retries (how many, how long apart, and what is reported), so that
        # max_retries=0 means none on both transports. No public switch exists as of aiohttp 3.14.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def exchange(self, client: httpx.AsyncClient, call: Call, settings: Settings) -> Exchange:
        """Send ``call`` straight through aiohttp, as ``client`` would send it; see the module."""
        url = settings.url(call.path)
        if call.params:
            url += "?" + urlencode(call.params)  # what httpx makes of params= (and requests)
        headers = settings.headers(with_body=call.body is not None)
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        data = None
        if call.body is not None:  # as httpx encodes json=
            data = json.dumps(call.body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        response = await self._send(call.method, URL(url, encoded=True), headers, data, self._timeout, None)
        try:
            status, answer_headers = response.status, response.headers
            body = await read_body(_Raw(response, None), status, answer_headers, call, settings)
        finally:
            _close(response)
        return status, answer_headers, body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` as httpx built it (headers, body, timeouts); the body is left to stream."""
        timeout = request.extensions.get("timeout", {})
        response = await self._send(
            request.method,
            URL(str(request.url), encoded=True),
            request.headers.multi_items(),
            request.content or None,
            _timeout(timeout.get("connect"), timeout.get("read")),
            request,
        )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def _send(  # noqa: PLR0917 (one private helper of the two ways in)
        self,
        method: str,
        url: URL,
        headers: Any,
        data: bytes | None,
        timeout: aiohttp.ClientTimeout | None,
        request: httpx.Request | None,
    ) -> aiohttp.ClientResponse:
        """The answer's status and headers; its body is still to be read."""
        try:
            return await self._session.request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                proxy=self._proxy,
                timeout=timeout or _NO_TIMEOUT,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise as_httpx_error(exc, request) from None

    async def aclose(self) -> None:
        """Close the session and its connections."""
        await self._session.close()


_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)


def _timeout(connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
    """httpx's connect and read timeouts, as aiohttp takes them (the read one between any two reads)."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)


class _Raw:
    """The body of ``response`` as it arrives, still encoded; its failures as httpx's."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request | None) -> None:
        self._response = response
        self._request = request

    def __aiter__(self) -> _Raw:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._response.content.readany()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise as_httpx_error(exc, self._request) from None
        if not chunk:
            raise StopAsyncIteration
        return chunk


def _close(response: aiohttp.ClientResponse) -> None:
    """Give the connection back when the body was read to its end; otherwise drop it."""
    if response.content.is_eof():
        response.release()
    else:
        response.close()  # the rest of the body is still on the wire: nothing can follow it


class _Body(httpx.AsyncByteStream):
    """The raw body of an aiohttp answer, as httpx streams one; closing it frees the connection."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _Raw(self._response, self._request)

    async def aclose(self) -> None:
        _close(self._response)


@cache
def as_httpx_table() -> tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]:
    """
    Each aiohttp failure and the httpx error httpx's own transport raises for it, subclasses first.

    Built on first use: aiohttp before 3.10 has no ``ConnectionTimeoutError`` (see :func:`usable`).
    """
    return (
        (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
        # SocketTimeoutError: nothing read within the read timeout.
        (asyncio.TimeoutError, httpx.ReadTimeout),
        (aiohttp.ClientProxyConnectionError, httpx.ProxyError),
        (aiohttp.ClientHttpProxyError, httpx.ProxyError),
        (aiohttp.ClientConnectorError, httpx.ConnectError),
        # Closed early, or not HTTP.
        (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
        (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
        (aiohttp.ClientOSError, httpx.ReadError),
    )


def as_httpx_error(exc: BaseException, request: httpx.Request | None) -> httpx.TransportError:
    """
    The httpx error httpx's own transport raises for what ``exc`` says happened (:func:`as_httpx_table`).

    The message is the failure's kind only: aiohttp's messages carry the URL (a proxy's with its
    password), and the hook reports the kind anyway.
    """
    kind: type[httpx.TransportError] = first_match(exc, as_httpx_table(), httpx.TransportError)
    return kind(type(exc).__name__, request=request)


def usable(proxy: str | None) -> bool:
    """Whether this transport can send through ``proxy`` (and aiohttp is recent enough to map its errors)."""
    if not hasattr(aiohttp, "ConnectionTimeoutError"):  # aiohttp before 3.10 tells no timeout from another
        return False
    return proxy is None or URL(proxy).scheme == "http"
