"""
The proxy the environment names for a connection, and whether the sync or the async hook can go
through it: said before any request, clearly, rather than as a failed request retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from airflow_provider_octanist.exceptions import OctanistConnectionError

if TYPE_CHECKING:
    from airflow_provider_octanist import _api as api


class ProxySupport(NamedTuple):
    """The proxies a hook's HTTP library can go through."""

    hook: str
    schemes: frozenset[str]
    socks_module: str
    """The module the library speaks SOCKS through, an optional install."""
    socks_install: str


SYNC_PROXIES = ProxySupport(
    "sync hook",
    frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"}),
    "socks",
    "requests[socks]",
)
ASYNC_PROXIES = ProxySupport(
    "async hook", frozenset({"http", "https", "socks5", "socks5h"}), "socksio", "httpx[socks]"
)


def environment_proxy(settings: api.Settings, support: ProxySupport) -> str | None:
    """
    The proxy the environment names for the connection's base URL, or ``None``.

    ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case), read by requests'
    own rule, which the sync hook's session applies to every request: the async hook goes by the
    same, so a triggerer reaches Octanist the way a worker does.

    :raises OctanistConnectionError: the proxy named is one the hook cannot use (its scheme, a SOCKS
        proxy without the library's SOCKS package, a URL that cannot be read); said before any
        request, and without the proxy's URL, which may hold a user name and password.
    """
    from urllib.parse import urlsplit

    from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy

    named = select_proxy(settings.base_url, get_environ_proxies(settings.base_url))
    if not named:
        return None
    try:
        url: str = str(prepend_scheme_if_needed(named, "http"))  # type: ignore[no-untyped-call]
        parts = urlsplit(url)
        readable = bool(parts.hostname) and (parts.port or 0) >= 0  # .port raises for one not a number
    except ValueError:  # urllib3's LocationParseError among them
        url, readable = named, False
    scheme = url.partition("://")[0].lower()
    problem = None
    if scheme not in support.schemes:
        # Not the scheme itself: in a mistyped variable ("user:password@host") it is the user name.
        problem = f"a proxy the {support.hook} cannot use (it takes {', '.join(sorted(support.schemes))})"
    elif not readable:
        problem = "a proxy URL that cannot be read"
    elif scheme.startswith("socks") and not _importable(support.socks_module):
        problem = (
            f"a SOCKS proxy, which the {support.hook} uses only with pip install '{support.socks_install}'"
        )
    if problem is None:
        return url
    raise OctanistConnectionError(
        f"Connection {settings.conn_id!r}: the environment (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) names "
        f"{problem}, for {settings.base_url}. Fix the variable, or list the host in NO_PROXY."
    )


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
