"""
The list query language of ``GET /leads``: filters, sorting, search and page numbers.

Each query parameter becomes a predicate or a sort key; the store applies them under its lock.
"""

from __future__ import annotations

import math
import operator
import re
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._envelope import ApiError
from airflow_provider_octanist.testing._lead_fields import (
    CLICK_ID_FIELDS,
    LEAD_STATUSES,
    UTM_FIELDS,
    format_timestamp,
    normalize_status,
    number,
    parse_timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    Predicate = Callable[[Mapping[str, Any]], bool]

CONTROL_PARAMS = frozenset({"limit", "page", "sort", "search", "fields"})
"""Query parameters of ``GET /leads`` that are not filters."""
DEFAULT_SORT = "createdAt:desc"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100

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


def page_number(raw: str | None, name: str, *, default: int, high: int | None) -> int:
    """A ``limit``/``page`` query parameter as an int within bounds, or 400 VALIDATION_ERROR."""
    if raw is None:
        return default
    try:
        result = int(raw.strip())
    except ValueError:
        result = 0
    if result < 1 or (high is not None and result > high):
        bounds = f"between 1 and {high}" if high is not None else "at least 1"
        raise ApiError(400, "VALIDATION_ERROR", f"{name} must be a whole number {bounds}", {"field": name})
    return result


def body_number(raw: Any, name: str, *, default: int, high: int | None) -> int:
    """A ``limit``/``page`` body field as an int within bounds, or 400 VALIDATION_ERROR."""
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raw = "invalid"
    return page_number(str(raw), name, default=default, high=high)


def paginate(
    rows: list[Any], limit: int, page: int, *, lying: bool = False
) -> tuple[list[Any], dict[str, Any]]:
    """
    One page of ``rows`` and its ``meta.pagination``.

    :param lying: claim ``hasMore`` always and repeat the last page past the end.
    """
    total = len(rows)
    total_pages = math.ceil(total / limit)
    shown_page = min(page, total_pages) if lying else page
    start = (shown_page - 1) * limit
    chunk = rows[start : start + limit] if shown_page >= 1 else []
    pagination = {
        "limit": limit,
        "page": page,
        "totalPages": total_pages,
        "total": total,
        "hasMore": True if lying else page < total_pages,
    }
    return chunk, pagination


def parse_sort(raw: str) -> tuple[str, bool]:
    """``field:asc|desc`` (legacy snake_case fields too) as (field, descending)."""
    name, _, direction = raw.strip().partition(":")
    name = _LEGACY_SORT_FIELDS.get(name.strip(), name.strip())
    direction = (direction.strip() or "asc").lower()
    if name not in _SORTABLE_FIELDS or direction not in ("asc", "desc"):
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"sort must be field:asc or field:desc with a field of {', '.join(sorted(_SORTABLE_FIELDS))}",
            {"field": "sort", "value": raw},
        )
    return name, direction == "desc"


def sort_key(lead: Mapping[str, Any], name: str) -> tuple[bool, Any, str]:
    """Sort by one field with nulls last (first when descending), ties broken by id for stable paging."""
    value = lead.get(name)
    return (value is None, 0 if value is None else value, str(lead["id"]))


def matches_search(lead: Mapping[str, Any], needle: str) -> bool:
    """Whether ``needle`` (lower case) occurs in the lead's name, email or phone."""
    if not needle:
        return True
    return any(needle in str(lead.get(name) or "").lower() for name in ("name", "email", "phone"))


def parse_filter(key: str, raw: str, precision: str = "ms", *, strict_dates: bool = False) -> Predicate:
    """
    One ``field=value`` / ``field[op]=value`` query parameter (or a legacy one) as a predicate.

    :param precision: the precision of stored timestamps (``ms`` or ``us``).
    :param strict_dates: refuse a time finer than milliseconds, as the documented format has them.
    """
    if key == "updated_after":
        return _time_filter("updatedAt", "gt", raw, key, precision, strict_dates=strict_dates)
    match = _FILTER_KEY_RE.match(key)
    if match is None or match.group(1) not in _FILTER_OPERATORS:
        raise ApiError(400, "INVALID_FILTER", f"Unknown filter {key!r}", {"filter": key})
    name, op = match.group(1), (match.group(2) or "eq")
    if op not in _FILTER_OPERATORS[name]:
        allowed = ", ".join(sorted(_FILTER_OPERATORS[name]))
        raise ApiError(
            400,
            "INVALID_FILTER",
            f"Filter {name} does not support [{op}]; it supports {allowed}",
            {"filter": key},
        )
    if op == "exists":
        flag = raw.strip().lower()
        if flag not in ("true", "false"):
            raise ApiError(400, "INVALID_FILTER", f"{key} takes true or false, got {raw!r}", {"filter": key})
        wanted = flag == "true"
        return lambda lead: (lead.get(name) not in (None, "")) == wanted
    if name == "status":
        status = _filter_status(raw)
        return lambda lead: lead["status"] == status
    if name == "value":
        return _value_filter(op, raw, key)
    if op in _COMPARISONS:
        return _time_filter(name, op, raw, key, precision, strict_dates=strict_dates)
    return lambda lead: lead.get(name) == raw


def _filter_status(raw: str) -> str:
    try:
        return normalize_status(raw)
    except ValueError:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"status must be one of {', '.join(LEAD_STATUSES)}",
            {"field": "status", "value": raw},
        ) from None


def _value_filter(op: str, raw: str, key: str) -> Predicate:
    try:
        bound = number(raw, key)
    except ValueError:
        raise ApiError(
            400, "VALIDATION_ERROR", f"{key} must be a number", {"field": key, "value": raw}
        ) from None
    compare = _COMPARISONS.get(op, _equal)
    return lambda lead: lead["value"] is not None and compare(lead["value"], bound)


def _equal(a: Any, b: Any) -> bool:
    return bool(a == b)


_FRACTION_RE = re.compile(r"T\d{2}:\d{2}:\d{2}\.(\d+)")


def _filter_date(raw: str, key: str) -> datetime:
    try:
        return parse_timestamp(raw)
    except ValueError:
        raise ApiError(
            400, "INVALID_DATE", f"{key} must be an ISO 8601 date, got {raw!r}", {"field": key, "value": raw}
        ) from None


def _time_filter(name: str, op: str, raw: str, key: str, precision: str, *, strict_dates: bool) -> Predicate:
    if strict_dates and (fraction := _FRACTION_RE.search(raw)) is not None and len(fraction.group(1)) > 3:
        raise ApiError(
            400,
            "INVALID_DATE",
            f"{key} must be an ISO 8601 date with at most milliseconds, got {raw!r}",
            {"field": key, "value": raw},
        )
    bound = _filter_date(raw, key)
    compare = _COMPARISONS[op]
    if precision == "us" or bound.microsecond % 1000 == 0:
        # Stored timestamps are all in the canonical format of the server's precision, whose text
        # order is time order: comparing text keeps long lists fast.
        text = format_timestamp(bound, precision)
        return lambda lead: lead.get(name) is not None and compare(lead[name], text)
    return lambda lead: lead.get(name) is not None and compare(parse_timestamp(lead[name]), bound)
