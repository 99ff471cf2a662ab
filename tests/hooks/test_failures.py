"""
What a failed request of requests or httpx means: each exception type and its (reason, timeout,
may-have-reached-Octanist), the tables the retry policy reads, subclasses before their bases.
"""

from __future__ import annotations

import httpx
import pytest
import requests
import urllib3.exceptions

from airflow_provider_octanist._api import Failure
from airflow_provider_octanist.hooks._failures import (
    CLOSED_EARLY,
    CONNECT_TIMED_OUT,
    CUT_OFF,
    PROXY,
    READ_TIMED_OUT,
    REFUSED,
    TLS,
    httpx_failure,
    requests_failure,
)

_REFUSED_BY_URLLIB3 = urllib3.exceptions.MaxRetryError(
    None,
    "/",
    urllib3.exceptions.NewConnectionError(None, "refused"),
)

REQUESTS = [
    (requests.exceptions.ConnectTimeout(), CONNECT_TIMED_OUT),
    (requests.exceptions.ReadTimeout(), READ_TIMED_OUT),
    (requests.exceptions.ProxyError(), PROXY),
    (requests.exceptions.SSLError(), TLS),
    (requests.exceptions.ConnectionError(_REFUSED_BY_URLLIB3), REFUSED),
    (requests.exceptions.ConnectionError(urllib3.exceptions.NewConnectionError(None, "x")), REFUSED),
    (requests.exceptions.ConnectionError("Connection aborted."), CLOSED_EARLY),
    (requests.exceptions.ConnectionError(), CLOSED_EARLY),
    (requests.exceptions.ChunkedEncodingError(), CUT_OFF),
    (requests.exceptions.TooManyRedirects(), Failure("the request failed (TooManyRedirects)", False, True)),
]

HTTPX = [
    (httpx.ConnectTimeout("x"), CONNECT_TIMED_OUT),
    (httpx.PoolTimeout("x"), CONNECT_TIMED_OUT),
    (httpx.ReadTimeout("x"), READ_TIMED_OUT),
    (httpx.WriteTimeout("x"), READ_TIMED_OUT),
    (httpx.ProxyError("x"), PROXY),
    (httpx.ConnectError("x"), REFUSED),
    (httpx.RemoteProtocolError("x"), CLOSED_EARLY),
    (httpx.ReadError("x"), CLOSED_EARLY),
    (httpx.WriteError("x"), CLOSED_EARLY),
    (httpx.LocalProtocolError("x"), Failure("the request failed (LocalProtocolError)", False, True)),
    (httpx.TransportError("x"), Failure("the request failed (TransportError)", False, True)),
]


@pytest.mark.parametrize(("exc", "failure"), REQUESTS, ids=lambda v: type(v).__name__)
def test_a_requests_exception_means_its_rows_failure(exc: Exception, failure: Failure) -> None:
    assert requests_failure(exc) == failure


@pytest.mark.parametrize(("exc", "failure"), HTTPX, ids=lambda v: type(v).__name__)
def test_an_httpx_exception_means_its_rows_failure(exc: Exception, failure: Failure) -> None:
    assert httpx_failure(exc) == failure


@pytest.mark.parametrize(
    ("failure", "reason", "timeout", "reached"),
    [
        (CONNECT_TIMED_OUT, "connecting timed out", True, False),
        (READ_TIMED_OUT, "no response within the read timeout", True, True),
        (PROXY, "the proxy could not be reached, or would not connect to Octanist", False, False),
        (TLS, "the TLS handshake failed", False, False),
        (REFUSED, "the connection could not be opened (refused or unreachable)", False, False),
        (CLOSED_EARLY, "the connection was closed before a complete response arrived", False, True),
        (CUT_OFF, "the response was cut off", False, True),
    ],
)
def test_each_failure_says_its_reason_whether_it_timed_out_and_whether_it_may_have_been_sent(
    failure: Failure, reason: str, timeout: bool, reached: bool
) -> None:
    assert failure == (reason, timeout, reached)
