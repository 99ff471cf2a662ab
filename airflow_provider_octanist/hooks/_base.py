"""
What both hooks share: the connection and its settings, the proxy the environment names, the
reading of answers, and what a failed request of requests or httpx means (reason, timeout, whether
it may have reached Octanist).
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_octanist import DEFAULT_CONN_ID, lineage
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._checks import check_conn_id, check_lead_id
from airflow_provider_octanist._timestamps import finer_than_milliseconds
from airflow_provider_octanist.exceptions import OctanistConnectionError, OctanistError

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from airflow_provider_octanist.types import DateLike, Lead


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


PROXY_FAILED = "the proxy could not be reached, or would not connect to Octanist"


def requests_failure(exc: Exception) -> tuple[str, bool, bool]:
    """Describe a requests exception: (reason, is_timeout, may_have_reached_server)."""
    import requests
    import urllib3.exceptions

    reason, timeout, reached = f"the request failed ({type(exc).__name__})", False, True
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        reason, timeout, reached = "connecting timed out", True, False
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        reason, timeout = "no response within the read timeout", True
    elif isinstance(exc, requests.exceptions.ProxyError):
        # urllib3 says so only before the proxy passed anything on (no connection to it, or no tunnel).
        reason, reached = PROXY_FAILED, False
    elif isinstance(exc, requests.exceptions.SSLError):
        reason, reached = "the TLS handshake failed", False
    elif isinstance(exc, requests.exceptions.ConnectionError):
        cause = exc.args[0] if exc.args else None
        if isinstance(getattr(cause, "reason", cause), urllib3.exceptions.NewConnectionError):
            reason, reached = "the connection could not be opened (refused or unreachable)", False
        else:
            reason = "the connection was closed before a complete response arrived"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        reason = "the response was cut off"
    return reason, timeout, reached


def httpx_failure(exc: Exception) -> tuple[str, bool, bool]:
    """Describe an httpx exception: (reason, is_timeout, may_have_reached_server)."""
    import httpx

    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "connecting timed out", True, False
    if isinstance(exc, httpx.TimeoutException):
        return "no response within the read timeout", True, True
    if isinstance(exc, httpx.ProxyError):  # the proxy would not open a tunnel to Octanist
        return PROXY_FAILED, False, False
    if isinstance(exc, httpx.ConnectError):
        return "the connection could not be opened (refused or unreachable)", False, False
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "the connection was closed before a complete response arrived", False, True
    return f"the request failed ({type(exc).__name__})", False, True


async def async_extra_dejson(conn: Any) -> dict[str, Any]:
    """Read a connection's extras without blocking the event loop on the supervisor."""
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:
        # common-compat < 1.23 (the newest release for Python 3.10): the same thing by hand.
        if hasattr(conn, "aextra_dejson"):
            extras: dict[str, Any] = await conn.aextra_dejson()
            return extras
        return await asyncio.to_thread(lambda: dict(conn.extra_dejson))
    return dict(await get_async_extra_dejson(conn))


class _OctanistHookBase(BaseHook):  # type: ignore[misc]
    """Connection handling and the request/response vocabulary shared by both hooks."""

    conn_name_attr = "octanist_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "octanist"
    hook_name = "Octanist"

    def __init__(
        self,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.octanist_conn_id = check_conn_id(octanist_conn_id)
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_retries": max_retries,
        }
        self._settings: api.Settings | None = None
        # Time filters go out in milliseconds, as documented, until this server's own clock
        # (meta.timestamp) shows microseconds: then its instants need them to be told apart.
        self._server_writes_microseconds = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(octanist_conn_id={self.octanist_conn_id!r})"

    def _settings_from(self, conn: Any, extras: Mapping[str, Any]) -> api.Settings:
        self._settings = api.settings_from_connection(conn, extras, **self._overrides)
        return self._settings

    @contextmanager
    def _scrubbed(self) -> Generator[None, None, None]:
        """Raise every Octanist error from within with the API key scrubbed out of its texts."""
        try:
            yield
        except OctanistError as exc:
            if self._settings is not None:
                api.scrub_error(exc, self._settings.api_key)
            raise

    @staticmethod
    def _read(
        call: api.Call,
        answer: api.Answer,
        settings: api.Settings,
        *,
        expect: type,
        legacy: Any = None,
    ) -> tuple[Any, str | None]:
        """Return ``(data, request_id)`` of a 2xx answer (see :func:`_api.unwrap`)."""
        status, headers, content = answer
        data, payload = api.unwrap(call, status, headers, content, settings, expect=expect, legacy=legacy)
        return data, api.request_id_of(payload, headers)

    def _lead_query(self, filters: Mapping[str, Any], exact_time: bool = False) -> dict[str, str]:
        """The query of ``GET /leads`` for ``filters``, time bounds as precise as the server's own."""
        return api.lead_list_params(exact_time=exact_time or self._server_writes_microseconds, **filters)

    def _note_precision(self, page: api.Page) -> api.Page:
        """Remember when the server's clock shows microseconds (see ``_lead_query``); return ``page``."""
        if finer_than_milliseconds(page.server_time):
            self._server_writes_microseconds = True
        return page

    @staticmethod
    def _lead_call(lead_id: str) -> api.Call:
        return api.Call("GET", api.lead_path(lead_id))

    @staticmethod
    def _the_lead(lead_id: str, call: api.Call, data: Any, request_id: str | None) -> Lead:
        lead = api.check_lead(data, call, request_id)
        api.check_same_lead(lead, check_lead_id(lead_id), call, request_id)
        return cast("Lead", lead)

    @staticmethod
    def _stats_call(period: str | None, start_date: DateLike | None, end_date: DateLike | None) -> api.Call:
        return api.Call("POST", "/stats", body=api.stats_body(period, start_date, end_date))

    @staticmethod
    def _ad_spend_listing(
        start_date: DateLike, end_date: DateLike, platform: str | None, group_by: str | None, page_size: int
    ) -> api.Listing:
        return api.ad_spend_listing(api.ad_spend_body(start_date, end_date, platform, group_by, page_size))

    def _report_lineage(self, settings: api.Settings, dataset: str, *, output: bool = False) -> None:
        """Report a read (or, with ``output``, a change) of an Octanist dataset to Airflow's hook lineage."""
        lineage.report_to_hook_lineage(self, settings.base_url, dataset, output=output)

    def _scrub_text(self, text: str) -> str:
        return text if self._settings is None else api.scrub(text, self._settings.api_key)

    @staticmethod
    def _connection_ok(settings: api.Settings) -> tuple[bool, str]:
        return (
            True,
            f"Connected to Octanist at {settings.base_url}; the API key of {settings.conn_id!r} is valid.",
        )
