"""
The query of ``GET /leads``: keyword filters, sort, search, fields and raw API filters, validated.

Names and operators come from the lead vocabulary; nothing is sent before every filter is checked.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._checks import non_empty_text, whole_number
from airflow_provider_octanist._lead_vocabulary import (
    EQUALITY_FILTERS,
    LIST_FILTERS,
    RAW_FILTER_FIELDS,
    TIME_FILTERS,
    normalize_sort,
)
from airflow_provider_octanist._timestamps import api_timestamp, filter_timestamp
from airflow_provider_octanist.statuses import normalize_status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping


MAX_PAGE_SIZE = 100


DEFAULT_PAGE_SIZE = 100


_RAW_FILTER_RE = re.compile(r"^([A-Za-z0-9_]+)(?:\[([a-z]+)\])?$")


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
    page_size: int = DEFAULT_PAGE_SIZE,
    filters: Mapping[str, Any] | None = None,
    exact_time: bool = False,
    **named: Any,
) -> dict[str, str]:
    """
    Build the query of ``GET /leads`` from keyword filters, validating each before any request.

    :param page_size: leads per page (1-100).
    :param filters: further raw API filters, e.g. ``{"gclid[exists]": True}``; their field and
        operator are checked against the documented ones.
    :param exact_time: write time bounds with their microseconds (for a server that writes them
        itself) instead of in milliseconds (see ``_timestamps.filter_timestamp``).
    :param named: the keyword filters of ``types.LeadFilters``; ``None`` means not given.
    """
    unknown = [name for name in named if name not in LIST_FILTERS]
    if unknown:
        raise TypeError(
            f"got an unexpected keyword argument {unknown[0]!r}; lead filters are {', '.join(LIST_FILTERS)}."
        )
    params: dict[str, str] = {"limit": str(whole_number(page_size, "page_size", low=1, high=MAX_PAGE_SIZE))}
    for name in LIST_FILTERS:
        value = named.get(name)
        if value is not None:
            params.update(_keyword_filter(name, value, exact_time))
    for key, raw in (filters or {}).items():
        params.update(_raw_filter(key, raw, exact_time))
    return params


def _keyword_filter(name: str, value: Any, exact_time: bool) -> dict[str, str]:
    """The query parameter of one keyword filter (``updated_gte`` -> ``updatedAt[gte]``)."""
    if name in _CONTROLS:
        return {name: _CONTROLS[name](value)}
    if name in EQUALITY_FILTERS:
        return {EQUALITY_FILTERS[name]: non_empty_text(value, name)}
    prefix, op = name.rsplit("_", 1)
    if prefix in TIME_FILTERS:
        return {f"{TIME_FILTERS[prefix]}[{op}]": filter_timestamp(value, name, op, exact=exact_time)}
    return {f"value[{op}]": _number_filter(value, name)}


def _fields(value: str | Iterable[str]) -> str:
    names = [value] if isinstance(value, str) else list(value)
    chosen = [n.strip() for part in names for n in non_empty_text(part, "fields").split(",") if n.strip()]
    return ",".join(dict.fromkeys(["id", *chosen]))


_CONTROLS: dict[str, Callable[[Any], str]] = {
    "status": normalize_status,
    "sort": normalize_sort,
    "search": lambda value: non_empty_text(value, "search"),
    "fields": _fields,
}


def _raw_filter(key: str, value: Any, exact_time: bool) -> dict[str, str]:
    match = _RAW_FILTER_RE.match(key) if isinstance(key, str) else None
    if not match or match.group(1) not in RAW_FILTER_FIELDS:
        raise ValueError(
            f"Unknown lead filter {key!r}: filterable fields are {', '.join(sorted(RAW_FILTER_FIELDS))}."
        )
    name, op = match.group(1), match.group(2) or "eq"
    allowed = RAW_FILTER_FIELDS[name]
    if op not in allowed:
        raise ValueError(f"Filter {key!r}: {name} supports {', '.join(allowed)}, not {op}.")
    if name == "status":
        return {"status": normalize_status(str(value))}
    if op == "exists":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            raise ValueError(f"Filter {key!r} takes true or false, got {value!r}.")
        return {key: str(value).lower()}
    if name in TIME_FILTERS.values():
        return {key: filter_timestamp(value, key, op, exact=exact_time)}
    if name == "value":
        return {key: _number_filter(value, key)}
    return {key: _filter_value(value, key)}
