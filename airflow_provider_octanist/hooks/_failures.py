"""
What a failed request of requests or httpx means (reason, timeout, whether it may have reached
Octanist), written as tables of exception types checked in order, subclasses before their bases.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_octanist._api import Failure

if TYPE_CHECKING:
    from collections.abc import Sequence

T = TypeVar("T")

PROXY_FAILED = "the proxy could not be reached, or would not connect to Octanist"

CONNECT_TIMED_OUT = Failure("connecting timed out", timeout=True, may_have_reached_server=False)
READ_TIMED_OUT = Failure("no response within the read timeout", timeout=True, may_have_reached_server=True)
PROXY = Failure(PROXY_FAILED, timeout=False, may_have_reached_server=False)
TLS = Failure("the TLS handshake failed", timeout=False, may_have_reached_server=False)
REFUSED = Failure(
    "the connection could not be opened (refused or unreachable)",
    timeout=False,
    may_have_reached_server=False,
)
CLOSED_EARLY = Failure(
    "the connection was closed before a complete response arrived",
    timeout=False,
    may_have_reached_server=True,
)
CUT_OFF = Failure("the response was cut off", timeout=False, may_have_reached_server=True)


def first_match(exc: BaseException, table: Sequence[tuple[type[BaseException], T]], default: T) -> T:
    """The value of the first row of ``table`` whose exception type ``exc`` is an instance of."""
    for kind, value in table:
        if isinstance(exc, kind):
            return value
    return default


def unknown(exc: BaseException) -> Failure:
    """A failure no table names: it may have reached Octanist."""
    return Failure(f"the request failed ({type(exc).__name__})", timeout=False, may_have_reached_server=True)


@cache
def _requests_table() -> tuple[tuple[type[BaseException], Failure], ...]:
    import requests

    errors = requests.exceptions
    return (
        (errors.ConnectTimeout, CONNECT_TIMED_OUT),
        (errors.ReadTimeout, READ_TIMED_OUT),
        # urllib3 says so only before the proxy passed anything on (no connection to it, or no tunnel).
        (errors.ProxyError, PROXY),
        (errors.SSLError, TLS),
        (errors.ConnectionError, CLOSED_EARLY),  # or REFUSED: see requests_failure
        (errors.ChunkedEncodingError, CUT_OFF),
    )


def requests_failure(exc: Exception) -> Failure:
    """Describe a requests exception: (reason, is_timeout, may_have_reached_server)."""
    import urllib3.exceptions

    failure = first_match(exc, _requests_table(), unknown(exc))
    if failure is CLOSED_EARLY:  # a connection error: refused, if urllib3 could not open one
        cause = exc.args[0] if exc.args else None
        if isinstance(getattr(cause, "reason", cause), urllib3.exceptions.NewConnectionError):
            return REFUSED
    return failure


@cache
def _httpx_table() -> tuple[tuple[type[BaseException], Failure], ...]:
    import httpx

    return (
        (httpx.ConnectTimeout, CONNECT_TIMED_OUT),
        (httpx.PoolTimeout, CONNECT_TIMED_OUT),
        (httpx.TimeoutException, READ_TIMED_OUT),
        (httpx.ProxyError, PROXY),  # the proxy would not open a tunnel to Octanist
        (httpx.ConnectError, REFUSED),
        (httpx.RemoteProtocolError, CLOSED_EARLY),
        (httpx.ReadError, CLOSED_EARLY),
        (httpx.WriteError, CLOSED_EARLY),
    )


def httpx_failure(exc: Exception) -> Failure:
    """Describe an httpx exception: (reason, is_timeout, may_have_reached_server)."""
    return first_match(exc, _httpx_table(), unknown(exc))
