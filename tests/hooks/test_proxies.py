"""
Both hooks reach Octanist through the proxy the environment names, by the same rule.

A worker's sync hook (requests) and a triggerer's async hook (httpx, whose client has a transport of
its own and so would ignore the environment) must take the same path: a deferrable sensor behind a
corporate proxy fails where its non-deferrable twin works otherwise. The proxy here is a real
forwarding HTTP proxy on 127.0.0.1 that passes each request on to the fake server and records it.
"""

from __future__ import annotations

import base64
import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_octanist.exceptions import OctanistConnectionError
from airflow_provider_octanist.hooks._failures import PROXY_FAILED, httpx_failure, requests_failure

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_octanist.testing import FakeOctanistServer
    from tests.hooks.conftest import Twin

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "transfer-encoding"}


class ForwardingProxy(ThreadingHTTPServer):
    """An HTTP proxy for ``http://`` targets: what it receives in absolute form, it sends on."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str, str | None]] = []
        """(method, absolute URL, Proxy-Authorization) of every request, in order."""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="test-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, method: str, url: str, authorization: str | None) -> None:
        with self._lock:
            self.seen.append((method, url, authorization))

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ForwardingProxy

    def _forward(self) -> None:
        self.server.record(self.command, self.path, self.headers.get("Proxy-Authorization"))
        target = urlsplit(self.path)
        if target.scheme != "http" or not target.hostname:
            self.send_error(400, "only absolute http:// URLs")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            answer = upstream.getresponse()
            content = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward  # noqa: N815

    def do_CONNECT(self) -> None:
        """Record the tunnel asked for, and refuse it, as a proxy that may not reach the host does."""
        self.server.record(self.command, self.path, self.headers.get("Proxy-Authorization"))
        self.send_error(403, "tunnel refused")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``seen`` instead."""


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingProxy]:
    """A forwarding proxy on 127.0.0.1, and an environment that names no proxy until a test does."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    server = ForwardingProxy()
    yield server
    server.stop()


@pytest.fixture
def lead(octanist_server: FakeOctanistServer) -> str:
    return str(octanist_server.add_lead(name="Ada")["id"])


def test_both_hooks_go_through_the_proxy_the_environment_names(
    hook: Twin,
    proxy: ForwardingProxy,
    lead: str,
    octanist_server: FakeOctanistServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    assert hook.get_lead(lead)["name"] == "Ada"

    assert proxy.seen == [("GET", f"{octanist_server.url}/leads/{lead}", None)]


def test_a_proxy_with_a_user_gets_its_credentials_and_a_lower_case_variable_counts(
    hook: Twin, proxy: ForwardingProxy, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url.replace("://", "://ops:s3cret-proxy-pw@"))

    hook.get_lead(lead)

    expected = "Basic " + base64.b64encode(b"ops:s3cret-proxy-pw").decode()
    assert [authorization for _method, _url, authorization in proxy.seen] == [expected]


def test_a_proxy_named_as_host_and_port_is_an_http_proxy(
    hook: Twin, proxy: ForwardingProxy, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removeprefix("http://"))

    hook.get_lead(lead)

    assert len(proxy.seen) == 1


def test_no_proxy_lets_both_hooks_go_straight_to_the_host(
    hook: Twin, proxy: ForwardingProxy, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")

    assert hook.get_lead(lead)["name"] == "Ada"

    assert proxy.seen == []


def test_a_proxy_for_https_only_leaves_an_http_base_url_alone(
    hook: Twin, proxy: ForwardingProxy, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)

    hook.get_lead(lead)

    assert proxy.seen == []


def test_an_https_base_url_asks_the_https_proxy_for_a_tunnel_and_a_refused_one_is_said(
    connect: Callable[..., None],
    make_twin: Callable[..., Twin],
    proxy: ForwardingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The production shape: an https:// API behind HTTPS_PROXY. The proxy refuses the tunnel, so
    # nothing resolves or reaches the made-up host; what the proxy saw shows the route.
    connect(host="https://octanist.test/api")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    hook = make_twin()

    with pytest.raises(OctanistConnectionError) as caught:
        hook.get_lead("lead_1")

    assert PROXY_FAILED in str(caught.value)
    assert {(method, url) for method, url, _auth in proxy.seen} == {("CONNECT", "octanist.test:443")}
    assert len(proxy.seen) == 4  # the first attempt and three retries: nothing reached Octanist


def test_a_proxy_that_cannot_be_reached_is_a_connection_error_that_never_shows_its_password(
    hook: Twin, proxy: ForwardingProxy, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = proxy.server_address[1]
    proxy.stop()  # nothing listens on its port any more
    monkeypatch.setenv("ALL_PROXY", f"http://ops:s3cret-proxy-pw@127.0.0.1:{port}")

    with pytest.raises(OctanistConnectionError) as caught:
        hook.get_lead(lead)

    assert "s3cret-proxy-pw" not in str(caught.value)
    assert "No answer from Octanist" in str(caught.value)


@pytest.mark.parametrize(
    ("named", "said"),
    [
        (
            "ftp://ops:s3cret-proxy-pw@127.0.0.1:2121",
            "a proxy the {kind} hook cannot use (it takes http, https, socks",
        ),
        (
            "ops:s3cret-proxy-pw@127.0.0.1:3128",
            "a proxy the {kind} hook cannot use (it takes http, https, socks",
        ),
        ("http://ops:s3cret-proxy-pw@127.0.0.1:port", "a proxy URL that cannot be read"),
    ],
)
def test_a_proxy_a_hook_cannot_use_is_refused_before_any_request_naming_the_variable_not_the_url(
    hook: Twin,
    proxy: ForwardingProxy,
    lead: str,
    octanist_server: FakeOctanistServer,
    monkeypatch: pytest.MonkeyPatch,
    named: str,
    said: str,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", named)
    served = len(octanist_server.requests)

    with pytest.raises(OctanistConnectionError) as caught:
        hook.get_lead(lead)

    message = str(caught.value)
    assert said.format(kind=hook.kind) in message
    assert "HTTP_PROXY" in message
    assert "NO_PROXY" in message
    assert "s3cret-proxy-pw" not in message
    assert "ops" not in message
    assert len(octanist_server.requests) == served  # nothing was sent, nothing retried


def test_a_socks_proxy_without_the_libraries_socks_package_names_what_to_install(
    hook: Twin, proxy: ForwardingProxy, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Neither PySocks (requests) nor socksio (httpx) is a dependency: make sure they are missing.
    monkeypatch.setitem(sys.modules, "socks", None)
    monkeypatch.setitem(sys.modules, "socksio", None)
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")

    with pytest.raises(OctanistConnectionError) as caught:
        hook.get_lead(lead)

    install = "requests[socks]" if hook.kind == "sync" else "httpx[socks]"
    assert f"a SOCKS proxy, which the {hook.kind} hook uses only with pip install '{install}'" in str(
        caught.value
    )


def test_the_proxy_failure_reasons_say_the_proxy_and_that_nothing_reached_octanist() -> None:
    import httpx
    import requests

    assert requests_failure(requests.exceptions.ProxyError("refused")) == (PROXY_FAILED, False, False)
    assert httpx_failure(httpx.ProxyError("407 Proxy Authentication Required")) == (
        PROXY_FAILED,
        False,
        False,
    )
