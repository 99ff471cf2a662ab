"""
What both hooks share: settings, request building, response parsing and the retry policy.

Nothing here performs I/O or imports an HTTP client, so the sync hook (requests) and the async
hook (httpx) speak the API with exactly the same words and parse it with exactly the same code.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

from airflow_provider_octanist._backoff import TRANSIENT_STATUS, backoff_seconds
from airflow_provider_octanist._timestamps import api_timestamp, format_day
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistConflictError,
    OctanistConnectionError,
    OctanistError,
    OctanistNotFoundError,
    OctanistRateLimitError,
    OctanistResponseError,
    OctanistServerError,
    OctanistTimeoutError,
    OctanistValidationError,
)
from airflow_provider_octanist.statuses import (
    LEAD_STATUSES,
    LEGACY_ALIASES,
    SETTABLE_STATUSES,
    normalize_status,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

DEFAULT_BASE_URL = "https://octanist.com/api"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF = 1.0
"""Seconds before the first retry; doubled for each further one, with jitter."""
MAX_RETRY_WAIT = 60.0
"""No single wait, ``Retry-After`` included, is longer than this."""
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 100
MAX_AD_SPEND_PAGE_SIZE = 500
MAX_PAGES = 10_000
"""A list never reads more pages than this, whatever ``hasMore`` claims."""

API_KEY_HEADER = "X-API-KEY"
USER_AGENT = "airflow-provider-octanist"

_LEAD_ID_MAX = 256

# ----------------------------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------------------------


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

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, *, with_body: bool = False) -> dict[str, str]:
        headers = {API_KEY_HEADER: self.api_key, "Accept": "application/json", "User-Agent": USER_AGENT}
        if with_body:
            headers["Content-Type"] = "application/json"
        return headers


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    # Airflow forms store extras either plainly or prefixed with ``extra__<conn_type>__``.
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__octanist__{name}")
    return None if value == "" else value


def _positive_number(value: Any, what: str, conn_id: str, *, integer: bool = False) -> float:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"Connection {conn_id!r}: {what} must be a number, got {value!r}.") from None
    if integer and not number.is_integer():
        raise ValueError(f"Connection {conn_id!r}: {what} must be a whole number, got {value!r}.")
    if not math.isfinite(number) or number < 0 or (not integer and number == 0):
        raise ValueError(f"Connection {conn_id!r}: {what} must be a positive number, got {value!r}.")
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
            f"Connection {conn_id!r}: host {host!r} is not an http(s) URL. "
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
        api_key=api_key,
        read_timeout=DEFAULT_READ_TIMEOUT
        if read_timeout is None
        else _positive_number(read_timeout, "timeout", conn_id),
        connect_timeout=DEFAULT_CONNECT_TIMEOUT
        if connect is None
        else _positive_number(connect, "connect_timeout", conn_id),
        max_retries=DEFAULT_MAX_RETRIES
        if retries is None
        else int(_positive_number(retries, "max_retries", conn_id, integer=True)),
        backoff=DEFAULT_BACKOFF if backoff is None else _positive_number(backoff, "retry_backoff", conn_id),
        verify=True if verify is None else _verify(verify, conn_id),
    )


# ----------------------------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------------------------


def _count(value: Any, what: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{what} must be {bounds}, got {value}.")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}.")
    return value.strip()


def lead_path(lead_id: Any) -> str:
    """Path of one lead; the id is validated and percent-encoded so it can never leave its segment."""
    if not isinstance(lead_id, str):
        raise ValueError(f"A lead id must be a string such as 'lead_abc123', got {type(lead_id).__name__}.")
    cleaned = lead_id.strip()
    if not cleaned:
        raise ValueError("A lead id must not be empty. Pass the id Octanist returned, e.g. 'lead_abc123'.")
    if len(cleaned) > _LEAD_ID_MAX or any(ch < " " or ch == "\x7f" for ch in cleaned):
        raise ValueError(f"{lead_id!r} is not a lead id: it is too long or contains control characters.")
    if cleaned in {".", ".."}:
        raise ValueError(f"{lead_id!r} is not a lead id.")
    return "/leads/" + quote(cleaned, safe="")


# ----------------------------------------------------------------------------------------------
# GET /leads parameters
# ----------------------------------------------------------------------------------------------

_TIME_FIELDS = {"created": "createdAt", "updated": "updatedAt", "qualified": "qualifiedAt"}
_OPERATORS = ("gt", "gte", "lt", "lte")
_EQUALITY_FIELDS = {
    "source": "source",
    "label_id": "labelId",
    "website": "website",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
}
CLICK_ID_FIELDS = (
    "gclid", "dclid", "wbraid", "gbraid", "ga4cid", "ga4sid", "fbc", "fbp",
    "msclkid", "ttclid", "twclid", "rdt_cid", "sccid", "epik", "li_fat_id",
)  # fmt: skip
_RAW_FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("eq",),
    "source": ("eq",),
    "labelId": ("eq",),
    "website": ("eq",),
    "utm_source": ("eq",),
    "utm_medium": ("eq",),
    "utm_campaign": ("eq",),
    "value": ("eq", *_OPERATORS),
    "createdAt": (*_OPERATORS, "exists"),
    "updatedAt": (*_OPERATORS, "exists"),
    "qualifiedAt": (*_OPERATORS, "exists"),
    **dict.fromkeys(CLICK_ID_FIELDS, ("exists",)),
}
SORTABLE_FIELDS = ("createdAt", "updatedAt", "qualifiedAt", "value", "name", "email", "status")
_SNAKE_SORT = {"created_at": "createdAt", "updated_at": "updatedAt", "qualified_at": "qualifiedAt"}
_RAW_FILTER_RE = re.compile(r"^([A-Za-z0-9_]+)(?:\[([a-z]+)\])?$")


def normalize_sort(sort: str) -> str:
    """Validate ``field:direction``; the legacy snake_case ``updated_at:asc`` is accepted."""
    text = _text(sort, "sort")
    name, _, direction = text.partition(":")
    name = _SNAKE_SORT.get(name.strip(), name.strip())
    direction = (direction.strip() or "asc").lower()
    if name not in SORTABLE_FIELDS or direction not in ("asc", "desc"):
        raise ValueError(
            f"sort must look like 'updatedAt:asc' with a field of {', '.join(SORTABLE_FIELDS)} "
            f"and a direction asc or desc, got {sort!r}."
        )
    return f"{name}:{direction}"


def _filter_value(value: Any, what: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and math.isfinite(value):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (datetime, date)):
        return api_timestamp(value, what)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"{what} must be a string, a number, a boolean or a datetime, got {value!r}.")


def _number_filter(value: Any, what: str) -> str:
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return value.strip()
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return repr(value) if isinstance(value, float) else str(value)
    raise ValueError(f"{what} must be a number, got {value!r}.")


def lead_list_params(
    *,
    status: str | None = None,
    source: str | None = None,
    label_id: str | None = None,
    website: str | None = None,
    utm_source: str | None = None,
    utm_medium: str | None = None,
    utm_campaign: str | None = None,
    search: str | None = None,
    fields: str | Iterable[str] | None = None,
    sort: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    created_gt: datetime | date | str | None = None,
    created_gte: datetime | date | str | None = None,
    created_lt: datetime | date | str | None = None,
    created_lte: datetime | date | str | None = None,
    updated_gt: datetime | date | str | None = None,
    updated_gte: datetime | date | str | None = None,
    updated_lt: datetime | date | str | None = None,
    updated_lte: datetime | date | str | None = None,
    qualified_gt: datetime | date | str | None = None,
    qualified_gte: datetime | date | str | None = None,
    qualified_lt: datetime | date | str | None = None,
    qualified_lte: datetime | date | str | None = None,
    value_gt: float | None = None,
    value_gte: float | None = None,
    value_lt: float | None = None,
    value_lte: float | None = None,
    filters: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """
    Build the query of ``GET /leads`` from keyword filters, validating each before any request.

    ``filters`` passes further raw API filters, e.g. ``{"gclid[exists]": True}``; their field and
    operator are checked against the documented ones.
    """
    params: dict[str, str] = {"limit": str(_count(page_size, "page_size", low=1, high=MAX_PAGE_SIZE))}
    if status is not None:
        params["status"] = normalize_status(status)
    if sort is not None:
        params["sort"] = normalize_sort(sort)
    if search is not None:
        params["search"] = _text(search, "search")
    if fields is not None:
        names = [fields] if isinstance(fields, str) else list(fields)
        cleaned = [n.strip() for part in names for n in _text(part, "fields").split(",") if n.strip()]
        params["fields"] = ",".join(dict.fromkeys(["id", *cleaned]))
    equals = {
        "source": source,
        "label_id": label_id,
        "website": website,
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
    }
    for name, value in equals.items():
        if value is not None:
            params[_EQUALITY_FIELDS[name]] = _text(value, name)
    bounds: dict[str, Any] = {
        "created_gt": created_gt, "created_gte": created_gte, "created_lt": created_lt,
        "created_lte": created_lte, "updated_gt": updated_gt, "updated_gte": updated_gte,
        "updated_lt": updated_lt, "updated_lte": updated_lte, "qualified_gt": qualified_gt,
        "qualified_gte": qualified_gte, "qualified_lt": qualified_lt, "qualified_lte": qualified_lte,
    }  # fmt: skip
    for name, value in bounds.items():
        if value is not None:
            prefix, op = name.rsplit("_", 1)
            params[f"{_TIME_FIELDS[prefix]}[{op}]"] = api_timestamp(value, name)
    for op, number in {"gt": value_gt, "gte": value_gte, "lt": value_lt, "lte": value_lte}.items():
        if number is not None:
            params[f"value[{op}]"] = _number_filter(number, f"value_{op}")
    for key, raw in (filters or {}).items():
        params.update(_raw_filter(key, raw))
    return params


def _raw_filter(key: str, value: Any) -> dict[str, str]:
    match = _RAW_FILTER_RE.match(key) if isinstance(key, str) else None
    if not match or match.group(1) not in _RAW_FILTER_FIELDS:
        raise ValueError(
            f"Unknown lead filter {key!r}: filterable fields are {', '.join(sorted(_RAW_FILTER_FIELDS))}."
        )
    name, op = match.group(1), match.group(2) or "eq"
    allowed = _RAW_FILTER_FIELDS[name]
    if op not in allowed:
        raise ValueError(f"Filter {key!r}: {name} supports {', '.join(allowed)}, not {op}.")
    if name == "status":
        return {"status": normalize_status(str(value))}
    if op == "exists":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            raise ValueError(f"Filter {key!r} takes true or false, got {value!r}.")
        return {key: str(value).lower()}
    if name in _TIME_FIELDS.values():
        return {key: api_timestamp(value, key)}
    if name == "value":
        return {key: _number_filter(value, key)}
    return {key: _filter_value(value, key)}


# ----------------------------------------------------------------------------------------------
# POST/PATCH bodies
# ----------------------------------------------------------------------------------------------

CREATE_FIELDS = frozenset(
    {
        "name", "email", "phone", "custom", "note", "sessionId", "website", "path",
        *CLICK_ID_FIELDS, "utm_source", "utm_medium", "utm_campaign",
        "ad_storage", "ad_user_data", "ad_personalization", "analytics_storage",
    }
)  # fmt: skip
_CONSENT_FIELDS = ("ad_storage", "ad_user_data", "ad_personalization", "analytics_storage")


def create_lead_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the fields of a new lead (``POST /leads``) and return the JSON body."""
    unknown = sorted(set(fields) - CREATE_FIELDS)
    if unknown:
        raise ValueError(
            f"Unknown lead field(s) {', '.join(unknown)}: a new lead takes "
            f"{', '.join(sorted(CREATE_FIELDS))}. Status and value are set afterwards with update_lead()."
        )
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if name == "custom":
            if not isinstance(value, (str, dict, list)):
                raise ValueError(f"custom must be a string, a dict or a list, got {type(value).__name__}.")
            body[name] = value
        elif name in _CONSENT_FIELDS:
            if not isinstance(value, bool) and value not in ("granted", "denied"):
                raise ValueError(f"{name} must be true/false (or 'granted'/'denied'), got {value!r}.")
            body[name] = value
        else:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {type(value).__name__}: {value!r}.")
            body[name] = value
    if not any(body.get(k) not in (None, "") for k in ("name", "email", "phone", "custom")):
        raise ValueError("A new lead needs at least one of name, email, phone or custom.")
    return body


def update_lead_body(
    *,
    lead_id: str | None,
    email: str | None,
    phone: str | None,
    status: str | None,
    value: Any,
    note: str | None,
    loss_reason: str | None,
) -> dict[str, Any]:
    """Validate a change of lead(s) (``PATCH /leads``) and return the JSON body."""
    body: dict[str, Any] = {}
    if lead_id is not None:
        lead_path(lead_id)  # same validation as everywhere else an id is accepted
        body["id"] = lead_id.strip()
    if email is not None:
        body["email"] = _text(email, "email")
    if phone is not None:
        body["phone"] = _text(phone, "phone")
    if not body:
        raise ValueError("update_lead() needs lead_id, email or phone to say which lead to change.")
    if status is not None:
        body["status"] = normalize_status(status, allowed=SETTABLE_STATUSES)
    if value is not None:
        body["value"] = _lead_value(value)
    if note is not None:
        if not isinstance(note, str):
            raise ValueError(f"note must be a string, got {type(note).__name__}.")
        body["note"] = note
    if loss_reason is not None:
        if body.get("status") != "lost":
            raise ValueError("loss_reason is only kept when status='lost'; pass both together.")
        body["lossReason"] = _text(loss_reason, "loss_reason")
    if not set(body) - {"id", "email", "phone"}:
        raise ValueError("update_lead() has nothing to change: pass status, value, note or loss_reason.")
    return body


def _lead_value(value: Any) -> float | int:
    if isinstance(value, bool):
        raise ValueError(f"value must be a number, got {value!r}.")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"value must be a number, got {value!r}.") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"value must be a number, got {value!r}.") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"value must be a finite, non-negative number, got {value!r}.")
    return int(number) if number.is_integer() else number


def stats_body(period: str | None, start_date: Any, end_date: Any) -> dict[str, Any]:
    """Validate the body of ``POST /stats``; giving dates implies ``period='custom'``."""
    if period is None:
        period = "custom" if start_date is not None or end_date is not None else "current"
    if period not in ("current", "previous", "custom"):
        raise ValueError(f"period must be 'current', 'previous' or 'custom', got {period!r}.")
    body: dict[str, Any] = {"period": period}
    if period == "custom":
        if start_date is None or end_date is None:
            raise ValueError("period='custom' needs both start_date and end_date.")
        body["startDate"] = format_day(start_date, "start_date")
        body["endDate"] = format_day(end_date, "end_date")
        if body["startDate"] > body["endDate"]:
            raise ValueError(f"start_date {body['startDate']} is after end_date {body['endDate']}.")
    elif start_date is not None or end_date is not None:
        raise ValueError(f"start_date and end_date only apply to period='custom', not {period!r}.")
    return body


def ad_spend_body(
    start_date: Any, end_date: Any, platform: str | None, group_by: str | None, page_size: int
) -> dict[str, Any]:
    """Validate the body of ``POST /ad-spend`` (without ``page``)."""
    body: dict[str, Any] = {
        "startDate": format_day(start_date, "start_date"),
        "endDate": format_day(end_date, "end_date"),
        "limit": _count(page_size, "page_size", low=1, high=MAX_AD_SPEND_PAGE_SIZE),
    }
    if body["startDate"] > body["endDate"]:
        raise ValueError(f"start_date {body['startDate']} is after end_date {body['endDate']}.")
    if platform is not None:
        body["platform"] = _text(platform, "platform")
    if group_by is not None:
        body["groupBy"] = _text(group_by, "group_by")
    return body


def max_results_value(max_results: int | None) -> int | None:
    """Validate a cap on the number of results (``None`` for no cap)."""
    return None if max_results is None else _count(max_results, "max_results", low=1)


def page_number(page: int) -> int:
    """Validate a 1-based page number."""
    return _count(page, "page", low=1)


# ----------------------------------------------------------------------------------------------
# Responses
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One API call: enough to send it, retry it safely and describe it in messages."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    body: Any = None
    replay_safe: bool = True
    """Whether the call may be repeated after it may have reached the server."""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


class Answer(NamedTuple):
    """A 2xx answer as the hooks received it, before parsing."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True)
class Page:
    """One page of a list response."""

    items: list[Any]
    page: int
    has_more: bool
    total_pages: int | None
    total: int | None
    request_id: str | None


def request_id_of(payload: Any, headers: Mapping[str, str]) -> str | None:
    """The request id of an answer: ``meta.requestId``, else the ``X-Request-Id`` header."""
    if isinstance(payload, dict):
        meta = payload.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("requestId"), str):
            return str(meta["requestId"])
    return headers.get("x-request-id") or headers.get("X-Request-Id")


def decode_json(
    call: Call, status: int, headers: Mapping[str, str], content: bytes, settings: Settings
) -> Any:
    """Decode a body as JSON, or raise :class:`OctanistResponseError` describing what came instead."""
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        content_type = headers.get("content-type") or headers.get("Content-Type") or "no content type"
        snippet = content[:80].decode("utf-8", "replace").replace("\n", " ").strip()
        raise OctanistResponseError(
            f"Octanist answered {call.label} with HTTP {status} and a body that is not JSON "
            f"({content_type}, {len(content)} bytes: {snippet!r})",
            status_code=status,
            request_id=headers.get("x-request-id") or headers.get("X-Request-Id"),
            hint=f"Check that the connection {settings.conn_id!r} points at the Octanist API "
            f"(base URL {settings.base_url}); a proxy or an outage page can answer like this.",
        ) from None


_ERROR_CLASSES: list[tuple[Callable[[int], bool], type[OctanistError]]] = [
    (lambda s: s in (401, 403), OctanistAuthError),
    (lambda s: s == 404, OctanistNotFoundError),
    (lambda s: s == 409, OctanistConflictError),
    (lambda s: s in (400, 422), OctanistValidationError),
    (lambda s: s == 429, OctanistRateLimitError),
    (lambda s: s >= 500, OctanistServerError),
]


def error_for(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    settings: Settings,
    *,
    retries: int = 0,
) -> OctanistError:
    """
    Build the error for a non-2xx answer, with Octanist's code, message and request id.

    :param retries: how many times the call was retried before this answer, for the message.
    """
    try:
        payload: Any = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    code = message = None
    details: Any = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            message = error.get("message") if isinstance(error.get("message"), str) else None
            details = error.get("details")
        elif isinstance(error, str):  # legacy flat error body
            message = error
    return _make_error(
        call,
        settings,
        status=status,
        code=code,
        message=message,
        request_id=request_id_of(payload, headers),
        details=details,
        retries=retries,
    )


def _make_error(
    call: Call,
    settings: Settings,
    *,
    status: int,
    code: str | None,
    message: str | None,
    request_id: str | None,
    details: Any,
    retries: int = 0,
    http_status: int | None = None,
) -> OctanistError:
    """
    Build the error of a failed call; ``status`` picks its class and words.

    :param http_status: the status line, when it differs from ``status`` (a 200 saying ``success: false``).
    """
    cls: type[OctanistError] = next((c for test, c in _ERROR_CLASSES if test(status)), OctanistResponseError)
    said = f": {message}" if message else ""
    conn = settings.conn_id
    after = f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""
    if status == 401:
        text, hint = (
            f"Octanist rejected the API key of connection {conn!r}{said}",
            "Check the connection's password: it must be a current API key of the right organization.",
        )
    elif status == 403:
        text, hint = (
            f"Octanist did not allow {call.label} for the API key of connection {conn!r}{said}",
            "The key is valid but this action is not allowed (e.g. the organization's lead filtering "
            "rules rejected it); check the key's organization and its settings.",
        )
    elif status == 404:
        text, hint = (
            f"Octanist found nothing for {call.label}{said}",
            "Check the lead id, email or phone; ids look like 'lead_abc123'.",
        )
    elif status == 409:
        text, hint = (
            f"Octanist reported a conflict for {call.label}{said}",
            "Use a more specific identifier (the lead id), or enable bulk updates for the organization.",
        )
    elif status in (400, 422):
        text, hint = (
            f"Octanist refused {call.label} as invalid{said}",
            "Fix the request; it is not retried.",
        )
    elif status == 429:
        text, hint = (
            f"Octanist kept rate-limiting {call.label}{after}{said}",
            "Lower the request rate (fewer parallel tasks, a longer poll interval) or raise max_retries.",
        )
    elif status >= 500:
        text, hint = (
            f"Octanist failed {call.label} with a server error{after}{said}",
            "This is on Octanist's side; the task can be retried later.",
        )
        if not call.replay_safe:
            hint = (
                "It was not sent again because Octanist may have processed it; check whether it took "
                "effect (e.g. list_leads(search=...)) before repeating it."
            )
    else:
        text, hint = (f"Octanist answered {call.label} with unexpected HTTP {status}{said}", None)
    if 300 <= status < 400:
        hint = (
            "Redirects are not followed, so the API key is never sent elsewhere; set the connection's "
            "host to the final API URL."
        )
    return cls(
        text,
        status_code=status if http_status is None else http_status,
        code=code,
        request_id=request_id,
        hint=hint,
        details=details,
    )


_STATUS_OF_CODE = {
    "VALIDATION_ERROR": 400,
    "INVALID_FILTER": 400,
    "INVALID_DATE": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "RATE_LIMITED": 429,
    "INTERNAL_ERROR": 500,
}
"""The HTTP status each documented error code comes with, for a 2xx body that says ``success: false``."""


def unwrap(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    settings: Settings,
    *,
    expect: type,
    legacy: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any]:
    """
    Return ``(data, payload)`` of a 2xx answer, checking the envelope and the type of ``data``.

    ``legacy`` maps a pre-envelope (1.0-era) body to the current ``data`` shape; it returns ``None``
    for a body it does not recognise.
    """
    payload = decode_json(call, status, headers, content, settings)
    request_id = request_id_of(payload, headers)
    if isinstance(payload, dict) and payload.get("success") is False:
        # Octanist said "failed" with a 2xx: trust the words (the error code), not the status line.
        error = payload.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        code = code if isinstance(code, str) else None
        message = error.get("message") if isinstance(error, dict) else error
        message = message if isinstance(message, str) else None
        meaning = _STATUS_OF_CODE.get(code or "")
        if meaning is None:
            raise OctanistResponseError(
                f"Octanist answered {call.label} with HTTP {status} but success: false"
                + (f": {message}" if message else ""),
                status_code=status,
                code=code,
                request_id=request_id,
                hint="The API may have changed; please report it with the request id.",
            )
        raise _make_error(
            call,
            settings,
            status=meaning,
            code=code,
            message=message,
            request_id=request_id,
            details=error.get("details") if isinstance(error, dict) else None,
            http_status=status,
        )
    if isinstance(payload, dict) and "data" in payload:
        data = payload["data"]
    else:
        data = legacy(payload) if legacy is not None else None
        if data is None:
            raise OctanistResponseError(
                f"Octanist answered {call.label} without the documented 'data' field",
                status_code=status,
                request_id=request_id,
                hint="The API may have changed; please report it with the request id.",
            )
    if not isinstance(data, expect):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with data of type {type(data).__name__}, "
            f"expected {expect.__name__}",
            status_code=status,
            request_id=request_id,
        )
    return data, payload


def check_lead(lead: Any, call: Call, request_id: str | None) -> dict[str, Any]:
    """Make sure a lead object has the fields everything downstream relies on."""
    if not isinstance(lead, dict) or not isinstance(lead.get("id"), str) or not lead["id"]:
        raise OctanistResponseError(
            f"Octanist answered {call.label} with a lead that has no string 'id': {str(lead)[:120]!r}",
            request_id=request_id,
        )
    status = lead.get("status")
    if status is not None:
        if not isinstance(status, str):
            raise OctanistResponseError(
                f"Lead {lead['id']} has a status of type {type(status).__name__}, expected a string",
                request_id=request_id,
            )
        canonical = status.strip().lower()
        canonical = LEGACY_ALIASES.get(canonical, canonical)
        if canonical in LEAD_STATUSES and canonical != status:
            lead = {**lead, "status": canonical}
    return dict(lead)


def page_from(call: Call, data: Any, payload: Any, page: int, headers: Mapping[str, str]) -> Page:
    """Read one page of a list response (current envelope with ``meta.pagination``, or legacy array)."""
    request_id = request_id_of(payload, headers)
    pagination = payload.get("meta", {}).get("pagination") if isinstance(payload, dict) else None
    if not isinstance(pagination, dict):
        # Legacy list: a bare array, one page only.
        return Page(list(data), page, False, 1, len(data), request_id)
    has_more = pagination.get("hasMore")
    total_pages = pagination.get("totalPages")
    total = pagination.get("total")
    if not isinstance(has_more, bool):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with pagination.hasMore of type {type(has_more).__name__}",
            request_id=request_id,
        )
    return Page(
        list(data),
        page,
        has_more,
        total_pages if isinstance(total_pages, int) and not isinstance(total_pages, bool) else None,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
        request_id,
    )


def should_continue(page: Page, seen_first_ids: set[Any], call: Call) -> bool:
    """
    Decide whether to fetch the page after ``page``, guarding against an API that claims more forever.

    Stops at an empty page, at ``totalPages``, and raises when a page repeats an earlier one or the
    hard limit of :data:`MAX_PAGES` is reached.
    """
    if not page.has_more or not page.items:
        return False
    if page.total_pages is not None and page.page >= page.total_pages:
        return False
    head = page.items[0]
    # A lead is known by its id; a row without one (ad spend) by its whole content.
    first = (
        head["id"]
        if isinstance(head, dict) and "id" in head
        else json.dumps(head, sort_keys=True, default=str)
    )
    if first in seen_first_ids:
        raise OctanistResponseError(
            f"Octanist returned the same page again for {call.label} (page {page.page} repeats an "
            "earlier one while claiming hasMore)",
            request_id=page.request_id,
            hint="The listing was stopped so it cannot loop forever; please report it with the request id.",
        )
    seen_first_ids.add(first)
    if page.page >= MAX_PAGES:
        raise OctanistResponseError(
            f"Stopped listing {call.label} after {MAX_PAGES} pages while Octanist still claimed hasMore",
            request_id=page.request_id,
            hint="Narrow the filters or set max_results.",
        )
    return True


def check_row(row: Any, call: Call, request_id: str | None) -> dict[str, Any]:
    """Make sure a row of a report (ad spend) is an object."""
    if not isinstance(row, dict):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with a row of type {type(row).__name__}, expected an object",
            request_id=request_id,
        )
    return dict(row)


@dataclass(frozen=True)
class Listing:
    """A paged endpoint: how to ask for one of its pages and how to read what comes back."""

    method: str
    path: str
    check_item: Callable[[Any, Call, str | None], dict[str, Any]]
    params: Mapping[str, str] | None = None
    body: Mapping[str, Any] | None = None
    legacy: Callable[[Any], Any] | None = None

    def call(self, page: int) -> Call:
        """The call that fetches page ``page`` (1-based): in the query for GET, in the body for POST."""
        if self.body is not None:
            return Call(self.method, self.path, self.params, body={**self.body, "page": page})
        return Call(self.method, self.path, {**(self.params or {}), "page": str(page)})

    def read(self, call: Call, page: int, answer: Answer, settings: Settings) -> Page:
        """Parse the answer to ``call`` into a :class:`Page` of checked items."""
        status, headers, content = answer
        data, payload = unwrap(call, status, headers, content, settings, expect=list, legacy=self.legacy)
        result = page_from(call, data, payload, page, headers)
        items = [self.check_item(item, call, result.request_id) for item in result.items]
        return replace(result, items=items)


def leads_listing(params: Mapping[str, str]) -> Listing:
    """``GET /leads`` with query ``params`` (from :func:`lead_list_params`)."""
    return Listing("GET", "/leads", check_lead, params=params, legacy=legacy_list)


def ad_spend_listing(body: Mapping[str, Any]) -> Listing:
    """``POST /ad-spend`` with ``body`` (from :func:`ad_spend_body`)."""
    return Listing("POST", "/ad-spend", check_row, body=body)


class Paging:
    """
    Walks a listing page by page, in order, up to ``max_results``; the hooks only send its calls.

    Usage: ``while (call := paging.next_call()) is not None: items = paging.read(call, send(call))``.
    """

    def __init__(self, listing: Listing, settings: Settings, max_results: int | None = None) -> None:
        self.listing = listing
        self.settings = settings
        self.limit = max_results
        self.page = 1
        self.count = 0
        self.done = False
        self._seen: set[Any] = set()

    def next_call(self) -> Call | None:
        """The call for the next page, or ``None`` when the listing is complete."""
        return None if self.done else self.listing.call(self.page)

    def read(self, call: Call, answer: Answer) -> list[dict[str, Any]]:
        """Parse the answer to :meth:`next_call` and return its items (cut at ``max_results``)."""
        page = self.listing.read(call, self.page, answer, self.settings)
        items = page.items if self.limit is None else page.items[: self.limit - self.count]
        self.count += len(items)
        self.done = (self.limit is not None and self.count >= self.limit) or not should_continue(
            page, self._seen, call
        )
        self.page += 1
        return items


def legacy_created(payload: Any) -> Any:
    """Map the 1.0-era create answer ``{"id": ...}`` to the current ``data``."""
    if isinstance(payload, dict) and isinstance(payload.get("id"), str):
        return {"id": payload["id"], "message": "Lead added"}
    return None


def legacy_updated(payload: Any) -> Any:
    """Map the 1.0-era update answer ``{"success": true, "leadId": ...}`` to the current ``data``."""
    if isinstance(payload, dict) and payload.get("success") is True and "leadId" in payload:
        return {"leadId": payload["leadId"], "leadsUpdated": 1, "message": "Lead updated successfully"}
    return None


def legacy_list(payload: Any) -> Any:
    """The 1.0-era list answer is a bare array of leads."""
    return payload if isinstance(payload, list) else None


def legacy_check(payload: Any) -> Any:
    """``POST /check`` answers ``{"success": true}`` without ``data``."""
    return {} if isinstance(payload, dict) and payload.get("success") is True else None


# ----------------------------------------------------------------------------------------------
# Retries
# ----------------------------------------------------------------------------------------------


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Read ``Retry-After`` (delta-seconds or an HTTP date); ``None`` when absent or unreadable."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_wait(attempt: int, settings: Settings, retry_after: float | None = None) -> float:
    """
    Seconds to wait before retry number ``attempt`` (1-based) of a call.

    :func:`~airflow_provider_octanist._backoff.backoff_seconds` from the connection's
    ``retry_backoff``, capped at ``max_retry_wait``; a ``Retry-After`` from Octanist is honoured
    (also capped) and never undercut.
    """
    wait = backoff_seconds(attempt, settings.backoff, settings.max_retry_wait)
    if retry_after is not None:
        wait = max(wait, min(retry_after, settings.max_retry_wait))
    return wait


def may_retry_status(call: Call, status: int) -> bool:
    """A retryable HTTP status: 429 always (refused before any work), 5xx only for replay-safe calls."""
    if status == 429:
        return True
    return call.replay_safe and status in TRANSIENT_STATUS


class Attempts:
    """
    The retry policy of one call, shared by the sync and the async hook.

    Each hook sends, then asks ``after_status``/``after_failure`` how long to wait before trying
    again; ``None`` means give up and raise.
    """

    def __init__(self, call: Call, settings: Settings, log: Any) -> None:
        self.call = call
        self.settings = settings
        self.log = log
        self.retries = 0

    def _next_wait(self, reason: str, retry_after: float | None = None) -> float:
        self.retries += 1
        wait = retry_wait(self.retries, self.settings, retry_after)
        self.log.warning(
            "Octanist %s: %s; retry %d of %d in %.1f s.",
            self.call.label,
            reason,
            self.retries,
            self.settings.max_retries,
            wait,
        )
        return wait

    def after_status(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before retrying a non-2xx answer, or ``None`` to give up."""
        if self.retries >= self.settings.max_retries or not may_retry_status(self.call, status):
            return None
        request_id = headers.get("x-request-id") or headers.get("X-Request-Id")
        reason = f"HTTP {status}" + (f" (request {request_id})" if request_id else "")
        return self._next_wait(reason, retry_after_seconds(headers))

    def after_failure(self, reason: str, *, may_have_reached_server: bool) -> float | None:
        """Seconds to wait before retrying after no answer came, or ``None`` to give up."""
        if self.retries >= self.settings.max_retries:
            return None
        if may_have_reached_server and not self.call.replay_safe:
            return None  # it may have been processed: replaying could do it twice
        return self._next_wait(reason)

    def error(self, status: int, headers: Mapping[str, str], content: bytes) -> OctanistError:
        """The error to raise for a non-2xx answer that is not retried (any more)."""
        return error_for(self.call, status, headers, content, self.settings, retries=self.retries)

    def failure(self, reason: str, *, timeout: bool, may_have_reached_server: bool) -> OctanistError:
        """The error to raise when no answer came and the call is not retried (any more)."""
        cls = OctanistTimeoutError if timeout else OctanistConnectionError
        tries = f" after {self.retries + 1} attempt(s)"
        if may_have_reached_server and not self.call.replay_safe:
            hint = (
                "The request may have reached Octanist, so it was not sent again to avoid a duplicate; "
                "check whether it took effect (e.g. list_leads(search=...)) before repeating it."
            )
        elif timeout:
            hint = "Raise the connection's timeout/connect_timeout extras if Octanist is just slow."
        else:
            hint = f"Check the connection's base URL ({self.settings.base_url}) and the network path to it."
        return cls(
            f"No answer from Octanist for {self.call.label}{tries}: {reason}",
            may_have_reached_server=may_have_reached_server,
            hint=hint,
        )
