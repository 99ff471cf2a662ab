"""
A real HTTP server on loopback that speaks the Octanist REST API, for tests, demos and benchmarks.

``FakeOctanistServer`` keeps its leads in memory, answers over HTTP/1.1 with keep-alive exactly as
the current Octanist API documents (envelope, pagination, filters, legacy parameters), records
every request it receives and can be told to misbehave (``inject``) the way real networks and
gateways do. It uses the standard library only, so importing it is cheap and it works anywhere.
"""

from __future__ import annotations

import calendar
import contextlib
import hmac
import json
import logging
import math
import operator
import re
import selectors
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TypeVar, overload
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_provider_octanist.statuses import (
    LEAD_STATUSES,
    LOST,
    OPEN,
    QUALIFIED,
    SETTABLE_STATUSES,
    WON,
    normalize_status,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

__all__ = ["FAULT_KINDS", "FakeOctanistServer", "Fault", "RecordedRequest"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

API_KEY_HEADER = "X-API-KEY"
REDACTED = "***"
_SECRET_HEADERS = frozenset({API_KEY_HEADER.lower(), "authorization", "proxy-authorization", "cookie"})

CLICK_ID_FIELDS: tuple[str, ...] = (
    "gclid", "dclid", "wbraid", "gbraid", "ga4cid", "ga4sid", "fbc", "fbp",
    "msclkid", "ttclid", "twclid", "rdt_cid", "sccid", "epik", "li_fat_id",
)  # fmt: skip
UTM_FIELDS: tuple[str, ...] = ("utm_source", "utm_medium", "utm_campaign")
CONSENT_FIELDS: tuple[str, ...] = ("ad_storage", "ad_user_data", "analytics_storage", "ad_personalization")
TIMESTAMP_FIELDS: tuple[str, ...] = ("createdAt", "updatedAt", "qualifiedAt", "expiresAt")
LEAD_FIELDS: tuple[str, ...] = (
    "id", "name", "email", "phone", "note", "custom", "source", "website", "path", "labelId",
    "conversionName", "selectedConversionEventId", "status", "value", "lossReason",
    *CLICK_ID_FIELDS, *UTM_FIELDS, *CONSENT_FIELDS,
    "googleAdsCampaignId", "googleAdsCampaignName", "googleAdsAdGroupId", "googleAdsAdGroupName",
    "googleAdsAdId",
    *TIMESTAMP_FIELDS,
)  # fmt: skip
"""Every field of a stored lead, in the order the API returns them; absent values are ``None``."""
_LEGACY_LEAD_FIELDS: tuple[str, ...] = ("currency",)
"""Fields a caller may set on a lead that only exist when set (``currency`` is legacy-only)."""
_KNOWN_LEAD_FIELDS = frozenset(LEAD_FIELDS) | frozenset(_LEGACY_LEAD_FIELDS)

_CREATE_TEXT_FIELDS: tuple[str, ...] = (
    "name",
    "email",
    "phone",
    "note",
    "website",
    "path",
    *CLICK_ID_FIELDS,
    *UTM_FIELDS,
)
_LEAD_TTL = timedelta(days=90)
_DEFAULT_SOURCE = "inbound"
_API_SOURCE = "api"

_LIST_CONTROL_PARAMS = frozenset({"limit", "page", "sort", "search", "fields"})
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
_FILTER_OPERATORS: dict[str, frozenset[str]] = {
    "status": frozenset({"eq"}),
    "source": frozenset({"eq"}),
    "labelId": frozenset({"eq"}),
    "website": frozenset({"eq"}),
    **dict.fromkeys(UTM_FIELDS, frozenset({"eq"})),
    "value": frozenset({"eq", *_COMPARISONS}),
    **dict.fromkeys(("createdAt", "updatedAt", "qualifiedAt"), frozenset({*_COMPARISONS, "exists"})),
    **dict.fromkeys(CLICK_ID_FIELDS, frozenset({"exists"})),
}
_FILTER_KEY_RE = re.compile(r"^([A-Za-z0-9_]+)(?:\[([A-Za-z]+)\])?$")
_SORTABLE_FIELDS = frozenset(
    {
        "createdAt",
        "updatedAt",
        "qualifiedAt",
        "expiresAt",
        "value",
        "name",
        "email",
        "phone",
        "status",
        "source",
        "id",
    }
)
_LEGACY_SORT_FIELDS = {
    "created_at": "createdAt",
    "updated_at": "updatedAt",
    "qualified_at": "qualifiedAt",
    "expires_at": "expiresAt",
}
_DEFAULT_SORT = "createdAt:desc"
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 100
_MAX_AD_SPEND_PAGE_SIZE = 500
_MAX_BODY_BYTES = 10 * 1024 * 1024
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AD_PLATFORMS: tuple[str, ...] = ("google_ads", "meta_ads")
_AD_CURRENCY = "EUR"

_ERROR_CODES: dict[int, str] = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}
_ERROR_MESSAGES: dict[int, str] = {
    401: "Invalid or missing API key",
    403: "This action is not allowed for this API key",
    404: "Resource not found",
    409: "Resource conflict",
    429: "Too many requests, slow down",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}

FAULT_KINDS: tuple[str, ...] = ("status", "delay", "garbage", "truncated", "drop", "json")
"""The kinds of misbehaviour ``FakeOctanistServer.inject`` knows."""
_FAULT_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required options, optional options)
    "status": (frozenset({"status"}), frozenset({"retry_after", "body", "code", "message", "content_type"})),
    "delay": (frozenset({"seconds"}), frozenset()),
    "garbage": (frozenset(), frozenset({"body", "status", "content_type"})),
    "truncated": (frozenset(), frozenset({"payload", "status"})),
    "drop": (frozenset(), frozenset({"process"})),
    "json": (frozenset({"payload"}), frozenset({"status"})),
}
_DEFAULT_GARBAGE = "<html><body>Bad gateway</body></html>"


# ----------------------------------------------------------------------------------------------
# Records and faults
# ----------------------------------------------------------------------------------------------


class HeaderDict(dict[str, str]):
    """A ``dict`` of request headers with lower-case names whose look-ups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...

    @overload
    def get(self, key: str, default: str, /) -> str: ...

    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        """
        Return the header called ``key`` (any case), or ``default`` when it was not sent.

        :param key: header name, case-insensitive.
        :param default: what to return for a header that was not sent.
        """
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class RecordedRequest:
    """
    One request as the fake server received it; secrets in headers are replaced by ``***``.

    :param method: HTTP method, upper case.
    :param path: percent-decoded path without the query string, e.g. ``/api/leads/lead_x``.
    :param raw_path: the path exactly as sent on the wire (still percent-encoded), without query.
    :param query: the parsed query string, each name mapping to all its values in order.
    :param body: the parsed JSON body, or ``None`` when there was none or it was not JSON.
    :param headers: request headers (names lower-cased, look-ups case-insensitive), with the
        ``X-API-KEY``, ``Authorization`` and ``Cookie`` values redacted.
    :param connection_id: which TCP connection carried the request (1 for the first accepted).
    :param raw_body: the body bytes as received.
    :param received_at: ``time.monotonic()`` when the request had been read.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    connection_id: int
    raw_path: str
    raw_body: bytes = b""
    received_at: float = 0.0

    @property
    def api_key_sent(self) -> bool:
        """Whether the request carried an ``X-API-KEY`` header at all (its value is never kept)."""
        return API_KEY_HEADER in self.headers


@dataclass(frozen=True)
class Fault:
    """
    A misbehaviour waiting for the next matching request(s); see ``FakeOctanistServer.inject``.

    :param kind: one of ``FAULT_KINDS``.
    :param count: how many matching requests it still applies to.
    :param method: only requests with this method (upper case) match; ``None`` for any.
    :param path: only requests with exactly this decoded path (no query) match; ``None`` for any.
    :param path_prefix: only requests whose decoded path starts with this match; ``None`` for any.
    :param options: the kind's options, e.g. ``{"status": 503, "retry_after": 2}``.
    """

    kind: str
    count: int = 1
    method: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        """
        Tell whether a request is one this fault applies to.

        :param method: the request's HTTP method.
        :param path: the request's decoded path without query string.
        """
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is not None and self.path != path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """
    Render a point in time the way Octanist does: UTC with milliseconds, ``2026-01-15T10:30:00.000Z``.

    :param moment: the time; a naive datetime is taken as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    """
    Read an ISO 8601 date or date-time as aware UTC; raise ``ValueError`` if it is not one.

    :param text: e.g. ``2026-01-15T10:30:00.000Z``, ``2026-01-15T11:30:00+01:00`` or ``2026-01-15``;
        a value without offset is taken as UTC.
    """
    cleaned = text.strip()
    if cleaned[-1:] in ("Z", "z"):
        cleaned = cleaned[:-1] + "+00:00"
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _to_timestamp(value: datetime | str, what: str) -> str:
    """Return the canonical timestamp string of a datetime or ISO string, or raise ``ValueError``."""
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, str):
        try:
            return format_timestamp(parse_timestamp(value))
        except ValueError:
            pass
    raise ValueError(f"{what} must be a datetime or an ISO 8601 string, got {value!r}.")


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:12]


def _stringify_custom(custom: Any) -> Any:
    """Custom data is always stored and returned as a string; objects and lists become compact JSON."""
    if custom is None or isinstance(custom, str):
        return custom
    return json.dumps(custom, separators=(",", ":"))


def _number(raw: Any, what: str) -> int | float:
    """A lead value: a finite number, or a string holding one; raise ``ValueError`` otherwise."""
    if isinstance(raw, bool):
        raise ValueError(f"{what} must be a number, got {raw!r}")
    number: int | float
    if isinstance(raw, (int, float)):
        number = raw
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{what} must be a number, got {raw!r}") from None
    else:
        raise ValueError(f"{what} must be a number, got {raw!r}")
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {raw!r}")
    return number


def _day(text: Any, what: str) -> date:
    """A ``YYYY-MM-DD`` day from a request body; raise ``_ApiError`` INVALID_DATE otherwise."""
    if isinstance(text, str) and _DAY_RE.match(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise _ApiError(400, "INVALID_DATE", f"{what} must be a date in YYYY-MM-DD format", {"field": what})


def _month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    last_day = calendar.monthrange(year, month)[1]
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year, month, last_day, 23, 59, 59, 999000, tzinfo=timezone.utc)
    return start, end


# ----------------------------------------------------------------------------------------------
# Responses
# ----------------------------------------------------------------------------------------------


class _ApiError(Exception):
    """An API error answer: HTTP status, envelope error code, message and details."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _meta(request_id: str, pagination: Mapping[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if pagination is not None:
        meta["pagination"] = dict(pagination)
    meta["requestId"] = request_id
    meta["timestamp"] = format_timestamp(datetime.now(timezone.utc))
    return meta


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _json_response(
    status: int, payload: Any, request_id: str | None = None, extra_headers: Iterable[tuple[str, str]] = ()
) -> _Response:
    headers = [("Content-Type", "application/json; charset=utf-8")]
    if request_id is not None:
        headers.append(("X-Request-Id", request_id))
    headers.extend(extra_headers)
    return _Response(status, _json_bytes(payload), tuple(headers))


def _ok(data: Any, pagination: Mapping[str, Any] | None = None) -> _Response:
    request_id = _new_id("req_")
    return _json_response(
        200, {"success": True, "data": data, "meta": _meta(request_id, pagination)}, request_id
    )


def _error(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> _Response:
    request_id = _new_id("req_")
    payload = {
        "success": False,
        "error": {"code": code, "message": message, "details": dict(details or {})},
        "meta": _meta(request_id),
    }
    return _json_response(status, payload, request_id, extra_headers)


def _retry_after_header(value: Any) -> str:
    """``Retry-After`` from seconds (int/float), an HTTP-date string or an aware datetime."""
    if isinstance(value, bool):
        raise TypeError(f"retry_after must be seconds, an HTTP-date string or a datetime, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return format_datetime(moment.astimezone(timezone.utc), usegmt=True)
    if isinstance(value, str):
        return value
    raise TypeError(f"retry_after must be seconds, an HTTP-date string or a datetime, got {value!r}")


def _guess_content_type(body: str) -> str:
    stripped = body.lstrip()
    if stripped.startswith("<"):
        return "text/html; charset=utf-8"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json; charset=utf-8"


# ----------------------------------------------------------------------------------------------
# The server
# ----------------------------------------------------------------------------------------------


class _PendingFault:
    """A queued fault and how many more requests it applies to."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.remaining = fault.count


class FakeOctanistServer:
    """
    An in-memory Octanist API served over real HTTP on loopback, for tests, demos and benchmarks.

    Use it as a context manager (``with FakeOctanistServer() as server:``) or call ``start()`` and
    ``stop()``. Point a connection at ``server.url`` with ``server.api_key`` as its password.

    :param api_key: the only ``X-API-KEY`` value the server accepts.
    :param host: interface to listen on; keep the default loopback address.
    :param port: TCP port; ``0`` picks a free ephemeral port (read it back from ``port``).
    :param bulk_updates: whether ``PATCH /leads`` by email/phone may update several leads at once
        (the organisation setting); without it such a request is answered ``409 CONFLICT``.
    :param latency: seconds added before every response.
    """

    def __init__(
        self,
        api_key: str = "test-api-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bulk_updates: bool = False,
        latency: float = 0.0,
    ) -> None:
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string.")
        self.api_key = api_key
        self.host = host
        self.bulk_updates = bulk_updates
        self.latency = latency
        self.lying_pagination = False
        """When true, list responses always claim ``hasMore`` and repeat the last page past the end."""
        self.leads_limit = 500
        """The plan's lead limit reported by ``POST /stats`` (``usage.leadsLimit``)."""
        self._requested_port = port
        self._lock = threading.RLock()
        self._leads: dict[str, dict[str, Any]] = {}
        self._requests: list[RecordedRequest] = []
        self._faults: list[_PendingFault] = []
        self._timers: list[threading.Timer] = []
        self._connections: dict[int, socket.socket] = {}
        self._connections_opened = 0
        self._last_stamp: datetime | None = None
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._waker: tuple[socket.socket, socket.socket] | None = None
        self._stopped = False

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeOctanistServer:
        """Bind the port and serve in a daemon thread; return ``self``."""
        with self._lock:
            if self._stopped:
                raise RuntimeError(
                    "This FakeOctanistServer was stopped; create a new one instead of restarting it."
                )
            if self._httpd is not None:
                raise RuntimeError("This FakeOctanistServer is already running.")
            httpd = _HTTPServer((self.host, self._requested_port), self)
            self._httpd = httpd
            self._waker = socket.socketpair()
            self._thread = threading.Thread(
                target=self._serve,
                args=(httpd, self._waker[0]),
                name=f"fake-octanist-{httpd.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        log.debug("Fake Octanist API listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving: cancel scheduled changes, close the listener and all connections; idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._stopping.set()
            timers, self._timers = self._timers, []
            httpd, thread, waker = self._httpd, self._thread, self._waker
            connections = list(self._connections.values())
        for timer in timers:
            timer.cancel()
        if waker is not None:
            with contextlib.suppress(OSError):
                waker[1].send(b"\0")
        if thread is not None:
            thread.join(timeout=5)
        # Idle keep-alive connections sit in a blocking read; shutting the socket down wakes them.
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if httpd is not None:
            httpd.server_close()
        if waker is not None:
            for end in waker:
                end.close()
        for timer in timers:
            timer.join(timeout=1)

    def _serve(self, httpd: _HTTPServer, wake: socket.socket) -> None:
        """Accept connections until ``stop()``; unlike ``serve_forever`` it stops without a poll delay."""
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select()
                if self._stopping.is_set():
                    break
                if any(key.fileobj is httpd for key, _ in ready):
                    httpd.handle_request()

    def __enter__(self) -> FakeOctanistServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def is_running(self) -> bool:
        """Whether the server has been started and not stopped."""
        return self._httpd is not None and not self._stopped

    @property
    def port(self) -> int:
        """The TCP port the server listens on (known once started)."""
        if self._httpd is None:
            raise RuntimeError(
                "The FakeOctanistServer has no port yet: call start() or use it as a context manager."
            )
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the API including ``/api``, e.g. ``http://127.0.0.1:54321/api``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/api"

    @property
    def connection_json(self) -> str:
        """The Airflow connection for this server as JSON, ready for ``AIRFLOW_CONN_OCTANIST_DEFAULT``."""
        return json.dumps({"conn_type": "octanist", "host": self.url, "password": self.api_key})

    def __repr__(self) -> str:
        where = self.url if self.is_running else "stopped" if self._stopped else "not started"
        return f"<FakeOctanistServer {where} leads={len(self._leads)}>"

    # -- data -----------------------------------------------------------------------------------

    def add_lead(self, **fields: Any) -> dict[str, Any]:
        """
        Store a lead and return a copy of it; every field not given gets the API's default.

        Defaults: id ``lead_`` + 12 hex, status ``open``, source ``inbound``, ``createdAt`` now,
        ``updatedAt`` = ``createdAt``, ``expiresAt`` = ``createdAt`` + 90 days, everything else
        ``None``; ``qualifiedAt`` is stamped for a lead added as ``qualified``.

        :param fields: any lead field (see ``LEAD_FIELDS``, plus legacy ``currency``). Timestamps
            may be datetimes or ISO strings; ``custom`` given as dict/list is stored as JSON text;
            ``status`` accepts the legacy ``win``.
        """
        unknown = sorted(set(fields) - _KNOWN_LEAD_FIELDS)
        if unknown:
            raise TypeError(
                f"Unknown lead field(s) {', '.join(unknown)}; lead fields are {', '.join(LEAD_FIELDS)}."
            )
        values = self._clean_fields(fields)
        with self._lock:
            lead_id = values.pop("id", None) or self._unused_id()
            if lead_id in self._leads:
                raise ValueError(f"A lead with id {lead_id!r} already exists.")
            created = values.pop("createdAt", None) or format_timestamp(self._now())
            lead: dict[str, Any] = dict.fromkeys(LEAD_FIELDS)
            lead.update(id=lead_id, source=_DEFAULT_SOURCE, status=OPEN, createdAt=created)
            lead["updatedAt"] = created
            lead["expiresAt"] = format_timestamp(parse_timestamp(created) + _LEAD_TTL)
            if values.get("status") == QUALIFIED and "qualifiedAt" not in values:
                lead["qualifiedAt"] = values.get("updatedAt", created)
            lead.update(values)
            self._leads[lead_id] = lead
            return dict(lead)

    def add_leads(self, n: int, **fields: Any) -> list[dict[str, Any]]:
        """
        Store ``n`` leads with the same fields and fresh ids; return copies in insertion order.

        :param n: how many leads to add.
        :param fields: fields for every lead, as for ``add_lead`` (``id`` is not allowed).
        """
        if "id" in fields:
            raise TypeError("add_leads() gives each lead its own id; use add_lead(id=...) for a chosen id.")
        return [self.add_lead(**fields) for _ in range(n)]

    def lead(self, lead_id: str) -> dict[str, Any]:
        """
        Return a copy of one stored lead; raise ``KeyError`` if there is none with that id.

        :param lead_id: the lead's id.
        """
        with self._lock:
            try:
                return dict(self._leads[lead_id])
            except KeyError:
                raise KeyError(f"No lead with id {lead_id!r} in the fake Octanist server.") from None

    @property
    def leads(self) -> list[dict[str, Any]]:
        """Copies of every stored lead, in insertion order."""
        with self._lock:
            return [dict(lead) for lead in self._leads.values()]

    def set_status(
        self,
        lead_id: str,
        status: str,
        *,
        value: float | None = None,
        loss_reason: str | None = None,
        at: datetime | str | None = None,
    ) -> dict[str, Any]:
        """
        Change a lead's status as Octanist would and return a copy of the lead.

        Entering ``qualified`` stamps ``qualifiedAt``; ``lost`` keeps ``loss_reason`` (other statuses
        clear ``lossReason``); ``updatedAt`` becomes now, or ``at``.

        :param lead_id: the lead's id.
        :param status: the new status, ``open`` and legacy ``win`` included.
        :param value: a new monetary value, or ``None`` to keep the current one.
        :param loss_reason: why the lead was lost (only kept with ``lost``).
        :param at: the ``updatedAt`` to record instead of now, e.g. to give leads equal timestamps.
        """
        canonical = normalize_status(status)
        number = None if value is None else _number(value, "value")
        stamp = None if at is None else _to_timestamp(at, "at")
        with self._lock:
            lead = self._stored(lead_id)
            self._apply(lead, stamp or format_timestamp(self._now()), canonical, number, loss_reason)
            return dict(lead)

    def update_lead(self, lead_id: str, *, at: datetime | str | None = None, **fields: Any) -> dict[str, Any]:
        """
        Edit any fields of a lead directly (no status rules) and return a copy of it.

        ``updatedAt`` becomes now, or ``at``, unless ``updatedAt`` itself is among the fields.

        :param lead_id: the lead's id.
        :param at: the ``updatedAt`` to record instead of now.
        :param fields: lead fields to overwrite, as for ``add_lead`` (``id`` cannot change).
        """
        unknown = sorted(set(fields) - _KNOWN_LEAD_FIELDS)
        if unknown:
            raise TypeError(
                f"Unknown lead field(s) {', '.join(unknown)}; lead fields are {', '.join(LEAD_FIELDS)}."
            )
        if "id" in fields:
            raise TypeError("A lead's id cannot be changed.")
        values = self._clean_fields(fields)
        stamp = None if at is None else _to_timestamp(at, "at")
        with self._lock:
            lead = self._stored(lead_id)
            lead.update(values)
            if "updatedAt" not in values:
                lead["updatedAt"] = stamp or format_timestamp(self._now())
            return dict(lead)

    def schedule_status(
        self,
        lead_id: str,
        status: str,
        *,
        after: float,
        value: float | None = None,
        loss_reason: str | None = None,
    ) -> None:
        """
        Change a lead's status from a background timer after ``after`` seconds (``stop()`` cancels it).

        :param lead_id: the lead's id; it must exist now.
        :param status: the status to set then.
        :param after: delay in seconds.
        :param value: the value to set with the status, if any.
        :param loss_reason: the loss reason to set with ``lost``, if any.
        """
        normalize_status(status)
        self._stored_copy_or_raise(lead_id)
        timer = threading.Timer(
            after,
            self.set_status,
            args=(lead_id, status),
            kwargs={"value": value, "loss_reason": loss_reason},
        )
        timer.daemon = True
        timer.name = f"fake-octanist-schedule-{lead_id}"
        with self._lock:
            if self._stopped:
                raise RuntimeError("This FakeOctanistServer was stopped; nothing can be scheduled on it.")
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
            timer.start()

    # -- observation ----------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def request_count(self, method: str | None = None, path: str | None = None) -> int:
        """
        Count received requests, optionally only those with a method and/or exact decoded path.

        :param method: HTTP method, any case; ``None`` for all.
        :param path: decoded path without query, e.g. ``/api/leads``; ``None`` for all.
        """
        wanted = None if method is None else method.upper()
        with self._lock:
            return sum(
                1
                for r in self._requests
                if (wanted is None or r.method == wanted) and (path is None or r.path == path)
            )

    def clear_requests(self) -> None:
        """Forget every recorded request (``connections_opened`` is kept)."""
        with self._lock:
            self._requests.clear()

    @property
    def connections_opened(self) -> int:
        """How many TCP connections have been accepted; keep-alive reuse shows as fewer than requests."""
        with self._lock:
            return self._connections_opened

    # -- fault injection ------------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
        **options: Any,
    ) -> None:
        """
        Make the next ``count`` matching requests misbehave; faults are used first-in, first-out.

        Kinds and their options:

        - ``status``: answer ``status`` (e.g. 429, 500, 503) with an error envelope; ``retry_after``
          (seconds, HTTP-date string or datetime) adds ``Retry-After``; ``body`` sends that raw text
          instead; ``code``/``message`` override the envelope's; ``content_type`` for ``body``.
        - ``delay``: wait ``seconds`` first, then answer normally (the request still takes effect).
        - ``garbage``: answer ``status`` (200) with a non-JSON ``body`` (an HTML error page).
        - ``truncated``: process normally (or use ``payload``), promise the full ``Content-Length``,
          send half of the body and close the connection.
        - ``drop``: close the connection without answering; with ``process=True`` the request takes
          effect first, like a server that crashed after committing.
        - ``json``: answer ``status`` (200) with ``payload`` as the JSON body, e.g. ``{"success": false}``.

        A faulty answer replaces authentication and routing; ``latency`` still applies.

        :param fault: the kind, one of ``FAULT_KINDS``.
        :param count: how many matching requests it applies to.
        :param method: only requests with this method (any case).
        :param path: only requests with exactly this decoded path, e.g. ``/api/leads``.
        :param path_prefix: only requests whose decoded path starts with this, e.g. ``/api/leads/``.
        :param options: the kind's options, listed above.
        """
        if fault not in _FAULT_OPTIONS:
            raise ValueError(f"Unknown fault {fault!r}: use one of {', '.join(FAULT_KINDS)}.")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number of at least 1, got {count!r}.")
        required, optional = _FAULT_OPTIONS[fault]
        missing = sorted(required - set(options))
        unknown = sorted(set(options) - required - optional)
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"missing {', '.join(missing)}")
            if unknown:
                problems.append(f"unknown {', '.join(unknown)}")
            valid = ", ".join(sorted(required | optional)) or "none"
            raise TypeError(f"Fault {fault!r}: {'; '.join(problems)} option(s) (valid: {valid}).")
        status = options.get("status")
        if status is not None and (
            isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
        ):
            raise ValueError(f"Fault {fault!r}: status must be an HTTP status code, got {status!r}.")
        if fault == "delay" and (not isinstance(options["seconds"], (int, float)) or options["seconds"] < 0):
            raise ValueError(
                f"Fault 'delay': seconds must be a non-negative number, got {options['seconds']!r}."
            )
        if "retry_after" in options:
            _retry_after_header(options["retry_after"])
        entry = Fault(
            kind=fault,
            count=count,
            method=None if method is None else method.upper(),
            path=path,
            path_prefix=path_prefix,
            options=dict(options),
        )
        with self._lock:
            self._faults.append(_PendingFault(entry))

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not used up yet, in the order they will be applied (``count`` is what is left)."""
        with self._lock:
            return [replace(p.fault, count=p.remaining) for p in self._faults]

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    # -- internals: data ------------------------------------------------------------------------

    def _now(self) -> datetime:
        """The server clock: UTC at millisecond precision, never repeating or going back."""
        moment = datetime.now(timezone.utc)
        moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        if self._last_stamp is not None and moment <= self._last_stamp:
            moment = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = moment
        return moment

    def _unused_id(self) -> str:
        while True:
            lead_id = _new_id("lead_")
            if lead_id not in self._leads:
                return lead_id

    def _stored(self, lead_id: str) -> dict[str, Any]:
        try:
            return self._leads[lead_id]
        except KeyError:
            raise KeyError(f"No lead with id {lead_id!r} in the fake Octanist server.") from None

    def _stored_copy_or_raise(self, lead_id: str) -> None:
        with self._lock:
            self._stored(lead_id)

    @staticmethod
    def _clean_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise caller-given lead fields: timestamps, status, custom and value."""
        values = dict(fields)
        for name in TIMESTAMP_FIELDS:
            if values.get(name) is not None:
                values[name] = _to_timestamp(values[name], name)
        if "status" in values:
            values["status"] = normalize_status(values["status"])
        if "custom" in values:
            values["custom"] = _stringify_custom(values["custom"])
        if values.get("value") is not None:
            values["value"] = _number(values["value"], "value")
        return values

    @staticmethod
    def _apply(
        lead: dict[str, Any],
        stamp: str,
        status: str | None,
        value: float | None,
        loss_reason: str | None,
        *,
        also_qualified: bool = False,
    ) -> None:
        """Apply a status/value change to a stored lead the way Octanist does."""
        if status is not None:
            previous = lead["status"]
            lead["status"] = status
            entering_qualified = status == QUALIFIED and previous != QUALIFIED
            won_also_qualified = status == WON and also_qualified
            if entering_qualified or (
                (status == QUALIFIED or won_also_qualified) and lead["qualifiedAt"] is None
            ):
                lead["qualifiedAt"] = stamp
            if status != LOST:
                lead["lossReason"] = None
            elif previous != LOST:
                lead["lossReason"] = loss_reason
        if loss_reason is not None and lead["status"] == LOST:
            lead["lossReason"] = loss_reason
        if value is not None:
            lead["value"] = value
        lead["updatedAt"] = stamp

    # -- internals: HTTP ------------------------------------------------------------------------

    def _connection_opened(self, sock: socket.socket) -> int:
        with self._lock:
            self._connections_opened += 1
            connection_id = self._connections_opened
            self._connections[connection_id] = sock
            if self._stopping.is_set():
                # Accepted while stop() ran: end it now rather than leave a thread blocked on it.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return connection_id

    def _connection_closed(self, connection_id: int) -> None:
        with self._lock:
            self._connections.pop(connection_id, None)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for pending in self._faults:
                if pending.fault.matches(method, path):
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        self._faults.remove(pending)
                    return pending.fault
        return None

    def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops so ``stop()`` never waits for a delay."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _fault_response(self, fault: Fault) -> _Response:
        """The answer of a ``status``, ``garbage`` or ``json`` fault."""
        options = fault.options
        if fault.kind == "json":
            return _json_response(int(options.get("status", 200)), options["payload"])
        if fault.kind == "garbage":
            body = str(options.get("body", _DEFAULT_GARBAGE))
            content_type = str(options.get("content_type", "text/html; charset=utf-8"))
            return _Response(
                int(options.get("status", 200)), body.encode("utf-8"), (("Content-Type", content_type),)
            )
        status = int(options["status"])
        extra: list[tuple[str, str]] = []
        if options.get("retry_after") is not None:
            extra.append(("Retry-After", _retry_after_header(options["retry_after"])))
        if options.get("body") is not None:
            body = str(options["body"])
            content_type = str(options.get("content_type") or _guess_content_type(body))
            return _Response(status, body.encode("utf-8"), (("Content-Type", content_type), *extra))
        code = str(
            options.get("code")
            or _ERROR_CODES.get(status)
            or ("INTERNAL_ERROR" if status >= 500 else "ERROR")
        )
        message = str(options.get("message") or _ERROR_MESSAGES.get(status) or f"HTTP {status}")
        return _error(status, code, message, extra_headers=extra)

    def _dispatch(
        self, method: str, raw_path: str, query: dict[str, list[str]], body: bytes, key: str | None
    ) -> _Response:
        """Route one request and answer it as the Octanist API would."""
        routes: dict[str, Callable[[], _Response]]
        segments = raw_path.split("/")
        if raw_path == "/api/check":
            routes = {"POST": lambda: _json_response(200, {"success": True}, _new_id("req_"))}
        elif raw_path == "/api/leads":
            routes = {
                "GET": lambda: self._list_leads(query),
                "POST": lambda: self._create_lead(body),
                "PATCH": lambda: self._patch_leads(body),
            }
        elif len(segments) == 4 and segments[:3] == ["", "api", "leads"] and segments[3]:
            lead_id = unquote(segments[3])
            routes = {"GET": lambda: self._get_lead(lead_id)}
        elif raw_path == "/api/stats":
            routes = {"POST": lambda: self._stats(body)}
        elif raw_path == "/api/ad-spend":
            routes = {"POST": lambda: self._ad_spend(body)}
        else:
            return _error(404, "NOT_FOUND", f"No API endpoint at {raw_path}")
        handler = routes.get(method)
        if handler is None:
            allowed = ", ".join(sorted(routes))
            return _error(
                405,
                "METHOD_NOT_ALLOWED",
                f"{method} is not allowed on {raw_path}; use {allowed}",
                extra_headers=[("Allow", allowed)],
            )
        if key is None or not hmac.compare_digest(key.encode("utf-8"), self.api_key.encode("utf-8")):
            if raw_path == "/api/check":
                return _json_response(401, {"error": "Invalid or missing API key"}, _new_id("req_"))
            return _error(401, "UNAUTHORIZED", "Invalid or missing API key")
        try:
            return handler()
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.details)

    @staticmethod
    def _json_object(body: bytes, *, what: str) -> dict[str, Any]:
        """The request body as a JSON object, or a 400 VALIDATION_ERROR saying what is wrong."""
        if not body.strip():
            raise _ApiError(400, "VALIDATION_ERROR", f"{what} needs a JSON object body")
        try:
            payload = json.loads(body)
        except ValueError:
            raise _ApiError(400, "VALIDATION_ERROR", "Invalid JSON in request body") from None
        if not isinstance(payload, dict):
            raise _ApiError(
                400, "VALIDATION_ERROR", f"{what} needs a JSON object body, not {type(payload).__name__}"
            )
        return payload

    # -- endpoints ------------------------------------------------------------------------------

    def _get_lead(self, lead_id: str) -> _Response:
        with self._lock:
            lead = self._leads.get(lead_id)
            if lead is None:
                raise _ApiError(404, "NOT_FOUND", f"Lead {lead_id} not found", {"id": lead_id})
            return _ok(dict(lead))

    def _list_leads(self, query: dict[str, list[str]]) -> _Response:
        def first(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        limit = _page_number(first("limit"), "limit", default=_DEFAULT_PAGE_SIZE, high=_MAX_PAGE_SIZE)
        page = _page_number(first("page"), "page", default=1, high=None)
        sort_field, descending = _parse_sort(first("sort") or _DEFAULT_SORT)
        search = (first("search") or "").strip().lower()
        fields = [name.strip() for name in (first("fields") or "").split(",") if name.strip()]
        predicates = [
            _parse_filter(key, values[0]) for key, values in query.items() if key not in _LIST_CONTROL_PARAMS
        ]
        wanted = list(dict.fromkeys(["id", *fields])) if fields else None
        with self._lock:
            selected = [
                lead
                for lead in self._leads.values()
                if all(predicate(lead) for predicate in predicates) and _matches_search(lead, search)
            ]
            selected.sort(key=lambda lead: _sort_key(lead, sort_field), reverse=descending)
            rows, pagination = self._paginate(selected, limit, page)
            if wanted is None:
                rows = [dict(lead) for lead in rows]
            else:
                rows = [{name: lead[name] for name in wanted if name in lead} for lead in rows]
        return _ok(rows, pagination)

    def _paginate(self, rows: list[Any], limit: int, page: int) -> tuple[list[Any], dict[str, Any]]:
        total = len(rows)
        total_pages = math.ceil(total / limit)
        shown_page = min(page, total_pages) if self.lying_pagination else page
        start = (shown_page - 1) * limit
        chunk = rows[start : start + limit] if shown_page >= 1 else []
        has_more = True if self.lying_pagination else page < total_pages
        pagination = {
            "limit": limit,
            "page": page,
            "totalPages": total_pages,
            "total": total,
            "hasMore": has_more,
        }
        return chunk, pagination

    def _create_lead(self, body: bytes) -> _Response:
        payload = self._json_object(body, what="Creating a lead")
        if not any(payload.get(name) not in (None, "") for name in ("name", "email", "phone", "custom")):
            raise _ApiError(
                400, "VALIDATION_ERROR", "At least one of name, email, phone or custom is required"
            )
        values: dict[str, Any] = {}
        for name in _CREATE_TEXT_FIELDS:
            raw = payload.get(name)
            if raw is not None and not isinstance(raw, str):
                raise _ApiError(400, "VALIDATION_ERROR", f"{name} must be a string", {"field": name})
            if raw is not None:
                values[name] = raw
        if payload.get("custom") is not None:
            values["custom"] = _stringify_custom(payload["custom"])
        for name in CONSENT_FIELDS:
            raw = payload.get(name)
            if raw is None:
                continue
            if isinstance(raw, str) and raw.lower() in ("granted", "denied"):
                raw = raw.lower() == "granted"
            if not isinstance(raw, bool):
                raise _ApiError(400, "VALIDATION_ERROR", f"{name} must be a boolean", {"field": name})
            values[name] = raw
        lead = self.add_lead(source=_API_SOURCE, **values)
        return _ok({"id": lead["id"], "message": "Lead added"})

    def _patch_leads(self, body: bytes) -> _Response:
        payload = self._json_object(body, what="Updating a lead")
        field_name, wanted = _patch_identifier(payload)
        status = _patch_status(payload)
        value: int | float | None = None
        if payload.get("value") is not None:
            try:
                value = _number(payload["value"], "value")
            except ValueError as exc:
                raise _ApiError(400, "VALIDATION_ERROR", str(exc), {"field": "value"}) from None
        note, loss_reason = _optional_text(payload, "note"), _optional_text(payload, "lossReason")
        if status is None and value is None and note is None:
            raise _ApiError(400, "VALIDATION_ERROR", "Nothing to update: send status, value or note")
        also_qualified = payload.get("alsoQualified") is True
        with self._lock:
            matches = [lead for lead in self._leads.values() if _identifies(lead, field_name, wanted)]
            if not matches:
                raise _ApiError(
                    404, "NOT_FOUND", f"No lead matches {field_name} {wanted}", {field_name: wanted}
                )
            if len(matches) > 1 and not self.bulk_updates:
                raise _ApiError(
                    409,
                    "CONFLICT",
                    f"{len(matches)} leads match {field_name} {wanted}; use a more specific identifier",
                    {field_name: wanted, "matches": len(matches)},
                )
            stamp = format_timestamp(self._now())
            for lead in matches:
                if note is not None:
                    lead["note"] = note
                self._apply(lead, stamp, status, value, loss_reason, also_qualified=also_qualified)
            data = {
                "leadId": matches[0]["id"],
                "leadsUpdated": len(matches),
                "message": "Lead updated successfully",
            }
        return _ok(data)

    def _stats(self, body: bytes) -> _Response:
        payload = self._json_object(body, what="Stats")
        period = payload.get("period", "current")
        now = datetime.now(timezone.utc)
        if period == "current":
            start, end = _month_bounds(now.year, now.month)
        elif period == "previous":
            year, month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
            start, end = _month_bounds(year, month)
        elif period == "custom":
            if payload.get("startDate") is None or payload.get("endDate") is None:
                raise _ApiError(400, "VALIDATION_ERROR", "period custom requires startDate and endDate")
            first_day, last_day = _day(payload["startDate"], "startDate"), _day(payload["endDate"], "endDate")
            if first_day > last_day:
                raise _ApiError(400, "VALIDATION_ERROR", "startDate must not be after endDate")
            start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc)
            end = datetime(
                last_day.year, last_day.month, last_day.day, 23, 59, 59, 999000, tzinfo=timezone.utc
            )
        else:
            raise _ApiError(
                400, "VALIDATION_ERROR", "period must be current, previous or custom", {"field": "period"}
            )
        with self._lock:
            leads = [
                dict(lead)
                for lead in self._leads.values()
                if start <= parse_timestamp(lead["createdAt"]) <= end
            ]
        by_status = {status: sum(1 for lead in leads if lead["status"] == status) for status in LEAD_STATUSES}
        by_source: dict[str, int] = {}
        for lead in leads:
            source = lead["source"] or "unknown"
            by_source[source] = by_source.get(source, 0) + 1
        total = len(leads)
        qualified = by_status[QUALIFIED] + by_status[WON]
        won_values = [lead["value"] for lead in leads if lead["status"] == WON and lead["value"] is not None]
        total_value = sum(won_values)
        data = {
            "usage": {
                "leadsUsed": total,
                "leadsLimit": self.leads_limit,
                "lockedLeads": max(0, total - self.leads_limit),
                "periodStart": format_timestamp(start),
                "periodEnd": format_timestamp(end),
            },
            "leads": {"total": total, "byStatus": by_status, "bySource": dict(sorted(by_source.items()))},
            "conversion": {
                "qualified": qualified,
                "qualificationRate": round((total - by_status[OPEN]) / total, 4) if total else 0.0,
                "winRate": round(by_status[WON] / qualified, 4) if qualified else 0.0,
                "averageValue": round(total_value / len(won_values), 2) if won_values else 0,
                "totalValue": total_value,
            },
        }
        return _ok(data)

    def _ad_spend(self, body: bytes) -> _Response:
        payload = self._json_object(body, what="Ad spend")
        for name in ("startDate", "endDate"):
            if payload.get(name) is None:
                raise _ApiError(400, "VALIDATION_ERROR", f"{name} is required", {"field": name})
        first_day, last_day = _day(payload["startDate"], "startDate"), _day(payload["endDate"], "endDate")
        if first_day > last_day:
            raise _ApiError(400, "VALIDATION_ERROR", "startDate must not be after endDate")
        limit = _body_number(
            payload.get("limit"), "limit", default=_DEFAULT_PAGE_SIZE, high=_MAX_AD_SPEND_PAGE_SIZE
        )
        page = _body_number(payload.get("page"), "page", default=1, high=None)
        platform = payload.get("platform")
        platforms = [p for p in _AD_PLATFORMS if platform is None or str(platform).lower() == p]
        days = [first_day + timedelta(days=offset) for offset in range((last_day - first_day).days + 1)]
        rows = [_ad_spend_row(day, index, name) for day in days for index, name in enumerate(_AD_PLATFORMS)]
        rows = [row for row in rows if row["platform"] in platforms]
        if payload.get("groupBy") == "platform":
            rows = _ad_spend_by_platform(rows, first_day, last_day)
        chunk, pagination = self._paginate(rows, limit, page)
        return _ok(chunk, pagination)


# ----------------------------------------------------------------------------------------------
# Endpoint helpers
# ----------------------------------------------------------------------------------------------


def _patch_identifier(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The identifier ``PATCH /leads`` matches on: ``id``, else ``email``, else ``phone``."""
    for name in ("id", "email", "phone"):
        raw = payload.get(name)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            raise _ApiError(400, "VALIDATION_ERROR", f"{name} must be a string", {"field": name})
        return name, raw
    raise _ApiError(400, "VALIDATION_ERROR", "Send id, email or phone to identify the lead")


def _patch_status(payload: Mapping[str, Any]) -> str | None:
    """The new status of ``PATCH /leads``: ``status``, else the legacy ``changedTo``; never ``open``."""
    raw = payload.get("status") if payload.get("status") is not None else payload.get("changedTo")
    if raw is None:
        return None
    try:
        return normalize_status(raw, allowed=SETTABLE_STATUSES)
    except ValueError:
        raise _ApiError(
            400,
            "VALIDATION_ERROR",
            f"status must be one of {', '.join(SETTABLE_STATUSES)}",
            {"field": "status", "value": raw},
        ) from None


def _optional_text(payload: Mapping[str, Any], name: str) -> str | None:
    raw = payload.get(name)
    if raw is not None and not isinstance(raw, str):
        raise _ApiError(400, "VALIDATION_ERROR", f"{name} must be a string", {"field": name})
    return raw


def _page_number(raw: str | None, name: str, *, default: int, high: int | None) -> int:
    """A ``limit``/``page`` query parameter as an int within bounds, or 400 VALIDATION_ERROR."""
    if raw is None:
        return default
    try:
        number = int(raw.strip())
    except ValueError:
        number = 0
    if number < 1 or (high is not None and number > high):
        bounds = f"between 1 and {high}" if high is not None else "at least 1"
        raise _ApiError(400, "VALIDATION_ERROR", f"{name} must be a whole number {bounds}", {"field": name})
    return number


def _body_number(raw: Any, name: str, *, default: int, high: int | None) -> int:
    """A ``limit``/``page`` body field as an int within bounds, or 400 VALIDATION_ERROR."""
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raw = "invalid"
    return _page_number(str(raw), name, default=default, high=high)


def _parse_sort(raw: str) -> tuple[str, bool]:
    """``field:asc|desc`` (legacy snake_case fields too) as (field, descending)."""
    name, _, direction = raw.strip().partition(":")
    name = _LEGACY_SORT_FIELDS.get(name.strip(), name.strip())
    direction = (direction.strip() or "asc").lower()
    if name not in _SORTABLE_FIELDS or direction not in ("asc", "desc"):
        raise _ApiError(
            400,
            "VALIDATION_ERROR",
            f"sort must be field:asc or field:desc with a field of {', '.join(sorted(_SORTABLE_FIELDS))}",
            {"field": "sort", "value": raw},
        )
    return name, direction == "desc"


def _sort_key(lead: Mapping[str, Any], name: str) -> tuple[bool, Any, str]:
    """Sort by one field with nulls last (first when descending), ties broken by id for stable paging."""
    value = lead.get(name)
    return (value is None, 0 if value is None else value, str(lead["id"]))


def _matches_search(lead: Mapping[str, Any], needle: str) -> bool:
    if not needle:
        return True
    return any(needle in str(lead.get(name) or "").lower() for name in ("name", "email", "phone"))


def _identifies(lead: Mapping[str, Any], field_name: str, wanted: str) -> bool:
    stored = lead.get(field_name)
    if not isinstance(stored, str):
        return False
    if field_name == "email":
        return stored.strip().lower() == wanted.strip().lower()
    return stored.strip() == wanted.strip()


def _filter_date(raw: str, key: str) -> datetime:
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise _ApiError(
            400, "INVALID_DATE", f"{key} must be an ISO 8601 date, got {raw!r}", {"field": key, "value": raw}
        ) from None


def _parse_filter(key: str, raw: str) -> Callable[[Mapping[str, Any]], bool]:
    """One ``field=value`` / ``field[op]=value`` query parameter (or a legacy one) as a predicate."""
    if key == "updated_after":
        return _time_filter("updatedAt", "gt", raw, key)
    match = _FILTER_KEY_RE.match(key)
    if match is None or match.group(1) not in _FILTER_OPERATORS:
        raise _ApiError(400, "INVALID_FILTER", f"Unknown filter {key!r}", {"filter": key})
    name, op = match.group(1), (match.group(2) or "eq")
    if op not in _FILTER_OPERATORS[name]:
        allowed = ", ".join(sorted(_FILTER_OPERATORS[name]))
        raise _ApiError(
            400,
            "INVALID_FILTER",
            f"Filter {name} does not support [{op}]; it supports {allowed}",
            {"filter": key},
        )
    if op == "exists":
        flag = raw.strip().lower()
        if flag not in ("true", "false"):
            raise _ApiError(400, "INVALID_FILTER", f"{key} takes true or false, got {raw!r}", {"filter": key})
        wanted = flag == "true"
        return lambda lead: (lead.get(name) not in (None, "")) == wanted
    if name == "status":
        status = _filter_status(raw)
        return lambda lead: lead["status"] == status
    if name == "value":
        return _value_filter(op, raw, key)
    if op in _COMPARISONS:
        return _time_filter(name, op, raw, key)
    return lambda lead: lead.get(name) == raw


def _filter_status(raw: str) -> str:
    try:
        return normalize_status(raw)
    except ValueError:
        raise _ApiError(
            400,
            "VALIDATION_ERROR",
            f"status must be one of {', '.join(LEAD_STATUSES)}",
            {"field": "status", "value": raw},
        ) from None


def _value_filter(op: str, raw: str, key: str) -> Callable[[Mapping[str, Any]], bool]:
    try:
        number = _number(raw, key)
    except ValueError:
        raise _ApiError(
            400, "VALIDATION_ERROR", f"{key} must be a number", {"field": key, "value": raw}
        ) from None
    compare = _COMPARISONS.get(op, _equal)
    return lambda lead: lead["value"] is not None and compare(lead["value"], number)


def _equal(a: Any, b: Any) -> bool:
    return bool(a == b)


def _time_filter(name: str, op: str, raw: str, key: str) -> Callable[[Mapping[str, Any]], bool]:
    bound = _filter_date(raw, key)
    compare = _COMPARISONS[op]
    if bound.microsecond % 1000 == 0:
        # Stored timestamps are all in the canonical millisecond format, whose text order is time
        # order: comparing text keeps long lists fast.
        text = format_timestamp(bound)
        return lambda lead: lead.get(name) is not None and compare(lead[name], text)
    return lambda lead: lead.get(name) is not None and compare(parse_timestamp(lead[name]), bound)


def _ad_spend_row(day: date, index: int, platform: str) -> dict[str, Any]:
    """A synthetic but deterministic ad-spend row for one day and platform."""
    seed = day.toordinal() * 31 + index * 17
    clicks = 20 + seed % 80
    impressions = clicks * (25 + seed % 15)
    spend = round(clicks * (0.5 + (seed % 7) * 0.25), 2)
    return {
        "date": day.isoformat(),
        "platform": platform,
        "spend": spend,
        "currency": _AD_CURRENCY,
        "clicks": clicks,
        "impressions": impressions,
    }


def _ad_spend_by_platform(
    rows: list[dict[str, Any]], first_day: date, last_day: date
) -> list[dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(
            row["platform"],
            {
                "platform": row["platform"],
                "startDate": first_day.isoformat(),
                "endDate": last_day.isoformat(),
                "spend": 0.0,
                "currency": _AD_CURRENCY,
                "clicks": 0,
                "impressions": 0,
            },
        )
        total["spend"] = round(total["spend"] + row["spend"], 2)
        total["clicks"] += row["clicks"]
        total["impressions"] += row["impressions"]
    return list(totals.values())


# ----------------------------------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------------------------------


class _BadRequestBodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose handler threads never keep the process alive."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 resets connections when many clients connect at once.
    request_queue_size = 128
    # handle_request() is only called once the listener is readable: accept without waiting.
    timeout = 0

    def __init__(self, address: tuple[str, int], fake: FakeOctanistServer) -> None:
        self.fake = fake
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections reset by clients (or by ``stop()``) are normal here; anything else is logged."""
        log.debug("Fake Octanist connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Reads each request, records it, applies any fault and answers through the fake server."""

    protocol_version = "HTTP/1.1"
    server_version = "FakeOctanist/1.0"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per response on keep-alive connections).
    disable_nagle_algorithm = True
    server: _HTTPServer

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.connection_id = self.server.fake._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._connection_closed(self.connection_id)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds method, path and query only; headers (and the key) are never logged.
        log.debug("fake octanist %s: " + format, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                try:
                    chunk_size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise _BadRequestBodyError(400, "Bad chunked encoding") from None
                if chunk_size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += chunk_size
                if size > _MAX_BODY_BYTES:
                    raise _BadRequestBodyError(413, "Request body too large")
                chunks.append(self.rfile.read(chunk_size))
                self.rfile.readline(65537)
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BadRequestBodyError(400, "Bad Content-Length") from None
        if length < 0:
            raise _BadRequestBodyError(400, "Bad Content-Length")
        if length > _MAX_BODY_BYTES:
            raise _BadRequestBodyError(413, "Request body too large")
        return self.rfile.read(length)

    def _handle(self) -> None:
        fake = self.server.fake
        method = self.command.upper()
        target = urlsplit(self.path)
        raw_path = target.path
        path = unquote(raw_path)
        query = parse_qs(target.query, keep_blank_values=True)
        try:
            body = self._read_body()
        except _BadRequestBodyError as exc:
            self.close_connection = True
            self.send_error(exc.status, exc.message)
            return
        try:
            parsed = json.loads(body) if body.strip() else None
        except ValueError:
            parsed = None
        headers = HeaderDict()
        for name, value in self.headers.items():
            headers[name.lower()] = REDACTED if name.lower() in _SECRET_HEADERS else value
        fake._record(
            RecordedRequest(
                method=method,
                path=path,
                query=query,
                body=parsed,
                headers=headers,
                connection_id=self.connection_id,
                raw_path=raw_path,
                raw_body=body,
                received_at=time.monotonic(),
            )
        )
        fault = fake._take_fault(method, path)
        fake._pause(fake.latency)
        key = self.headers.get(API_KEY_HEADER)
        if fault is None:
            self._send(fake._dispatch(method, raw_path, query, body, key))
        elif fault.kind == "delay":
            fake._pause(float(fault.options["seconds"]))
            self._send(fake._dispatch(method, raw_path, query, body, key))
        elif fault.kind == "drop":
            if fault.options.get("process"):
                fake._dispatch(method, raw_path, query, body, key)
            self.close_connection = True
        elif fault.kind == "truncated":
            if "payload" in fault.options:
                response = _json_response(int(fault.options.get("status", 200)), fault.options["payload"])
            else:
                response = fake._dispatch(method, raw_path, query, body, key)
            self._send(response, truncate=True)
        else:
            self._send(fake._fault_response(fault))

    def _send(self, response: _Response, *, truncate: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body[: len(response.body) // 2] if truncate else response.body)
        if truncate:
            self.close_connection = True
