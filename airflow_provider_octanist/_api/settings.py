"""
The settings of one Octanist connection: base URL, API key, timeouts and retries, read once.

Everything a hook needs to know about a connection before it sends a request.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_octanist import __version__
from airflow_provider_octanist._checks import positive_number
from airflow_provider_octanist._redact import without_userinfo
from airflow_provider_octanist.exceptions import OctanistAuthError

if TYPE_CHECKING:
    from collections.abc import Mapping


DEFAULT_BASE_URL = "https://octanist.com/api"


DEFAULT_CONNECT_TIMEOUT = 10.0


DEFAULT_READ_TIMEOUT = 30.0


DEFAULT_MAX_RETRIES = 3


DEFAULT_BACKOFF = 1.0
"""Seconds before the first retry; doubled for each further one, with jitter."""


MAX_RETRY_WAIT = 60.0
"""No single wait, ``Retry-After`` included, is longer than this."""


DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""Bytes an answer may hold once decoded (64 MiB); a page of 100 leads is well under 1 MiB."""


@dataclass(frozen=True)
class Bound:
    """The range a numeric extra must keep to: above 0 (or from 0, with ``zero``) and at most ``high``."""

    high: float
    unit: str
    whole: bool = False
    zero: bool = False

    def words(self) -> str:
        kind = f"a whole number of {self.unit}" if self.whole else f"a number of {self.unit}"
        low = "from 0" if self.zero else "above 0"
        return f"{kind} {low} and at most {self.high:g}"


BOUNDS: dict[str, Bound] = {
    # Beyond these a value is a typo, and some overflow deep in the socket and thread code.
    "timeout": Bound(3600, "seconds"),
    "connect_timeout": Bound(600, "seconds"),
    "retry_backoff": Bound(MAX_RETRY_WAIT, "seconds"),
    "max_retries": Bound(100, "retries", whole=True, zero=True),
    "max_response_bytes": Bound(1024**3, "bytes", whole=True),
}
"""The allowed range of every numeric extra (and of the hook arguments that override them)."""


API_KEY_HEADER = "X-API-KEY"


USER_AGENT = f"airflow-provider-octanist/{__version__}"
"""Names the release, so Octanist's support can tell which version sent a request."""


@dataclass(frozen=True)
class Settings:
    """Everything a hook needs to talk to Octanist, read once from the Airflow connection."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = DEFAULT_BACKOFF
    max_retry_wait: float = MAX_RETRY_WAIT
    verify: bool | str = True
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    """An answer larger than this once decoded is refused while it is read (extra ``max_response_bytes``)."""

    @property
    def total_timeout(self) -> float:
        """
        Seconds one attempt may take in all: connecting, sending and reading the whole answer.

        ``connect_timeout + read_timeout`` (40 s by default). The read timeout alone bounds each
        read, and a server sending one byte at a time never trips it. An attempt stopped by this
        deadline is not retried, so a call lasts at most ``(max_retries + 1) * total_timeout`` plus
        its retry waits (each at most ``max_retry_wait``), and a slow drip at most one
        ``total_timeout``.
        """
        return self.connect_timeout + self.read_timeout

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, *, with_body: bool = False) -> dict[str, str]:
        headers = {API_KEY_HEADER: self.api_key, "Accept": "application/json", "User-Agent": USER_AGENT}
        if with_body:
            headers["Content-Type"] = "application/json"
        return headers


def _key_problem(api_key: str) -> str | None:
    """What makes a key unsendable in an HTTP header (its character class and position), or ``None``."""
    for position, char in enumerate(api_key, start=1):
        if char in "\r\n":
            return f"a line break at position {position}"
        if ord(char) < 0x20 or ord(char) == 0x7F:
            return f"a control character at position {position}"
        if ord(char) > 0x7E:
            return f"a non-ASCII character (U+{ord(char):04X}) at position {position}"
    return None


def check_api_key(api_key: str, conn_id: str) -> str:
    """
    Refuse a key that cannot travel in a header, naming the kind of character, never the key.

    A pasted key often carries a zero-width space or a line break; sent, it fails deep in the HTTP
    library with the key in the exception, or looks like a network problem and is retried.
    """
    problem = _key_problem(api_key)
    if problem is not None:
        raise OctanistAuthError(
            f"Connection {conn_id!r}: the API key contains {problem}, which cannot be sent in an HTTP header",
            hint="Paste the key again into the connection's password; copying from a web page or a "
            "document can add invisible characters.",
        )
    return api_key


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    # Airflow forms store extras either plainly or prefixed with ``extra__<conn_type>__``.
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__octanist__{name}")
    return None if value == "" else value


def _setting(value: Any, name: str, conn_id: str) -> float:
    """A numeric extra within its ``BOUNDS``, or a ``ValueError`` naming it and its range."""
    bound = BOUNDS[name]
    what = f"Connection {conn_id!r}: {name}"
    # Extras often hold strings: read them as numbers.
    number = positive_number(
        value, what, whole=bound.whole, zero=bound.zero, text=True, must_be=bound.words()
    )
    if number > bound.high:
        raise ValueError(f"{what} must be {bound.words()}, got {value!r}.")
    return number


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def normalize_base_url(
    host: str | None,
    schema: str | None,
    conn_id: str,
    *,
    allow_insecure_http: bool,
    port: int | None = None,
) -> str:
    """
    Turn the connection's host into a base URL, refusing plain ``http://`` to a non-loopback host.

    A bare host name gets ``https://`` and, when it has no path, Octanist's ``/api`` prefix. The
    connection's ``schema`` is either the scheme (``http``/``https``, as the HTTP provider reads it)
    or, as Airflow parses a URI such as ``octanist://:KEY@host:8080/api``, the base path; ``port``
    is the connection's port, which a URI puts there rather than in the host.

    :param host: the connection's host: empty, a host name, or a URL.
    :param schema: the connection's schema: a scheme, a base path, or empty.
    :param conn_id: connection id, for messages.
    :param allow_insecure_http: send the key over plain ``http://`` to a non-loopback host.
    :param port: the connection's port, if any.
    """
    if not host or not host.strip():
        return DEFAULT_BASE_URL
    host = host.strip()
    scheme_or_path = (schema or "").strip().strip("/")
    scheme_given = scheme_or_path.lower() in ("http", "https")
    if "://" not in host:
        host = f"{scheme_or_path.lower() if scheme_given else 'https'}://{host}"
    parts = urlsplit(host)
    try:
        host_port = parts.port
    except ValueError:
        host_port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or host_port == -1:
        raise ValueError(
            f"Connection {conn_id!r}: host {without_userinfo(host)!r} is not an http(s) URL. "
            f"Leave it empty for {DEFAULT_BASE_URL} or give a URL such as https://octanist.com/api."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(
            f"Connection {conn_id!r}: the host must be a plain base URL without credentials, query or "
            "fragment; put the API key in the connection's password."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure_http:
        raise ValueError(
            f"Connection {conn_id!r}: refusing to send the API key over plain http:// to "
            f"{parts.hostname}. Use https://, or set the extra allow_insecure_http to true for a "
            "test server you trust."
        )
    netloc = parts.netloc
    if port:
        if host_port is not None and host_port != port:
            raise ValueError(
                f"Connection {conn_id!r}: the host says port {host_port} but the port field says {port}; "
                "give the port once."
            )
        if host_port is None:
            netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if scheme_or_path and not scheme_given:
        if path:
            raise ValueError(
                f"Connection {conn_id!r}: the base path is given twice, in the host ({path!r}) and in the "
                f"schema ({scheme_or_path!r}); give the whole base URL in the host."
            )
        path = "/" + scheme_or_path
    if not path and (parts.hostname == "octanist.com" or parts.hostname.endswith(".octanist.com")):
        path = "/api"
    return f"{parts.scheme}://{netloc}{path}"


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _verify(value: Any, conn_id: str) -> bool | str:
    # requests and httpx both take a bool or a CA bundle path; a path must never read as "false".
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return _truthy(text)
    if not os.path.exists(text):
        raise ValueError(
            f"Connection {conn_id!r}: verify must be true, false or the path of a CA bundle; "
            f"{text!r} does not exist."
        )
    return text


def settings_from_connection(
    conn: Any,
    extras: Mapping[str, Any],
    *,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    max_retries: int | None = None,
) -> Settings:
    """Read :class:`Settings` from an Airflow ``Connection``; hook arguments override its extras."""
    conn_id = conn.conn_id
    api_key = (conn.password or "").strip()
    if not api_key:
        raise OctanistAuthError(
            f"Connection {conn_id!r} has no API key",
            hint="Put the Octanist API key (Settings > General > API Keys) in the connection's password.",
        )
    read_timeout = timeout if timeout is not None else _extra(extras, "timeout")
    connect = connect_timeout if connect_timeout is not None else _extra(extras, "connect_timeout")
    retries = max_retries if max_retries is not None else _extra(extras, "max_retries")
    backoff = _extra(extras, "retry_backoff")
    size_cap = _extra(extras, "max_response_bytes")
    verify = _extra(extras, "verify")
    return Settings(
        conn_id=conn_id,
        base_url=normalize_base_url(
            conn.host,
            conn.schema,
            conn_id,
            allow_insecure_http=_truthy(_extra(extras, "allow_insecure_http")),
            port=conn.port,
        ),
        api_key=check_api_key(api_key, conn_id),
        read_timeout=DEFAULT_READ_TIMEOUT
        if read_timeout is None
        else _setting(read_timeout, "timeout", conn_id),
        connect_timeout=DEFAULT_CONNECT_TIMEOUT
        if connect is None
        else _setting(connect, "connect_timeout", conn_id),
        max_retries=DEFAULT_MAX_RETRIES
        if retries is None
        else int(_setting(retries, "max_retries", conn_id)),
        backoff=DEFAULT_BACKOFF if backoff is None else _setting(backoff, "retry_backoff", conn_id),
        verify=True if verify is None else _verify(verify, conn_id),
        max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES
        if size_cap is None
        else int(_setting(size_cap, "max_response_bytes", conn_id)),
    )
