"""
The Octanist REST API as the fake answers it: routing, authentication and the lead endpoints.

``dispatch`` turns one request into one ``Response``; the reports live in ``_reports``.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from airflow_provider_octanist.testing import _reports
from airflow_provider_octanist.testing._envelope import ApiError, Response, error, json_response, ok
from airflow_provider_octanist.testing._lead_fields import (
    CLICK_ID_FIELDS,
    CONSENT_FIELDS,
    SETTABLE_STATUSES,
    UTM_FIELDS,
    new_id,
    normalize_status,
    number,
    stringify_custom,
)
from airflow_provider_octanist.testing._query import (
    CONTROL_PARAMS,
    DEFAULT_PAGE_SIZE,
    DEFAULT_SORT,
    MAX_PAGE_SIZE,
    matches_search,
    page_number,
    paginate,
    parse_filter,
    parse_sort,
    sort_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_octanist.testing._records import RecordedRequest
    from airflow_provider_octanist.testing._store import LeadStore

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
_API_SOURCE = "api"


def dispatch(
    store: LeadStore,
    api_key: str,
    request: RecordedRequest,
    key: str | None,
    list_order: Callable[[list[Any]], list[Any]] | None = None,
) -> Response:
    """
    Route one request and answer it as the Octanist API would.

    :param store: the leads and settings to answer from.
    :param api_key: the only key the API accepts.
    :param request: the request as received.
    :param key: the ``X-API-KEY`` the request carried, if any.
    :param list_order: for ``GET /leads``, put the matching leads (in insertion order) in this
        order instead of the requested sort, like a server that ignores ``sort``.
    """
    method, raw_path, query, body = request.method, request.raw_path, request.query, request.raw_body
    routes: dict[str, Callable[[], Response]]
    segments = raw_path.split("/")
    if raw_path == "/api/check":
        routes = {"POST": lambda: json_response(200, {"success": True}, new_id("req_"))}
    elif raw_path == "/api/leads":
        routes = {
            "GET": lambda: _list_leads(store, query, list_order),
            "POST": lambda: _create_lead(store, body),
            "PATCH": lambda: _patch_leads(store, body),
        }
    elif len(segments) == 4 and segments[:3] == ["", "api", "leads"] and segments[3]:
        lead_id = unquote(segments[3])
        routes = {"GET": lambda: _get_lead(store, lead_id)}
    elif raw_path == "/api/stats":
        routes = {"POST": lambda: _reports.stats(store, json_object(body, what="Stats"))}
    elif raw_path == "/api/ad-spend":
        routes = {"POST": lambda: _reports.ad_spend(json_object(body, what="Ad spend"))}
    else:
        return error(404, "NOT_FOUND", f"No API endpoint at {raw_path}")
    handler = routes.get(method)
    if handler is None:
        allowed = ", ".join(sorted(routes))
        return error(
            405,
            "METHOD_NOT_ALLOWED",
            f"{method} is not allowed on {raw_path}; use {allowed}",
            extra_headers=[("Allow", allowed)],
        )
    if key is None or not hmac.compare_digest(key.encode("utf-8"), api_key.encode("utf-8")):
        if raw_path == "/api/check":
            return json_response(401, {"error": "Invalid or missing API key"}, new_id("req_"))
        return error(401, "UNAUTHORIZED", "Invalid or missing API key")
    try:
        return handler()
    except ApiError as exc:
        return error(exc.status, exc.code, exc.message, exc.details)


def json_object(body: bytes, *, what: str) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 VALIDATION_ERROR saying what is wrong."""
    if not body.strip():
        raise ApiError(400, "VALIDATION_ERROR", f"{what} needs a JSON object body")
    try:
        payload = json.loads(body)
    except ValueError:
        raise ApiError(400, "VALIDATION_ERROR", "Invalid JSON in request body") from None
    if not isinstance(payload, dict):
        raise ApiError(
            400, "VALIDATION_ERROR", f"{what} needs a JSON object body, not {type(payload).__name__}"
        )
    return payload


def _get_lead(store: LeadStore, lead_id: str) -> Response:
    with store._lock:
        lead = store._leads.get(lead_id)
        if lead is None:
            raise ApiError(404, "NOT_FOUND", f"Lead {lead_id} not found", {"id": lead_id})
        return ok(store.printed(lead), server_time=store.server_time())


def _list_leads(
    store: LeadStore, query: dict[str, list[str]], list_order: Callable[[list[Any]], list[Any]] | None
) -> Response:
    def first(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    limit = page_number(first("limit"), "limit", default=DEFAULT_PAGE_SIZE, high=MAX_PAGE_SIZE)
    if store.page_cap is not None:
        limit = min(limit, store.page_cap)
    page = 1 if store.ignore_page else page_number(first("page"), "page", default=1, high=None)
    sort_field, descending = parse_sort(first("sort") or DEFAULT_SORT)
    search = (first("search") or "").strip().lower()
    fields = [name.strip() for name in (first("fields") or "").split(",") if name.strip()]
    precision = store.timestamp_precision
    for key in query:
        if key not in CONTROL_PARAMS and key.partition("[")[0] in store.refused_filters:
            raise ApiError(400, "INVALID_FILTER", f"Unknown filter {key!r}", {"filter": key})
    predicates = [
        parse_filter(_as_applied(store, key), values[0], precision, strict_dates=store.strict_dates)
        for key, values in query.items()
        if key not in CONTROL_PARAMS
    ]
    wanted = list(dict.fromkeys(["id", *fields])) if fields else None
    with store._lock:
        store._listing_page(page)
        selected = [
            lead
            for lead in store._leads.values()
            if all(predicate(lead) for predicate in predicates) and matches_search(lead, search)
        ]
        if list_order is None:
            selected.sort(key=lambda lead: sort_key(lead, sort_field), reverse=descending)
        else:
            selected = list_order(selected)
        rows, pagination = paginate(selected, limit, page, lying=store.lying_pagination)
        rows = [store.printed(lead) for lead in rows]
        if wanted is not None:
            rows = [{name: lead[name] for name in wanted if name in lead} for lead in rows]
        return ok(rows, pagination, server_time=store.server_time())


def _as_applied(store: LeadStore, key: str) -> str:
    """The filter ``key`` as the server applies it: ``[gte]`` read as ``[gt]`` when it confuses them."""
    return key.replace("[gte]", "[gt]") if store.gte_as_gt else key


def _create_lead(store: LeadStore, body: bytes) -> Response:
    payload = json_object(body, what="Creating a lead")
    if not any(payload.get(name) not in (None, "") for name in ("name", "email", "phone", "custom")):
        raise ApiError(400, "VALIDATION_ERROR", "At least one of name, email, phone or custom is required")
    values: dict[str, Any] = {}
    for name in _CREATE_TEXT_FIELDS:
        raw = payload.get(name)
        if raw is not None and not isinstance(raw, str):
            raise ApiError(400, "VALIDATION_ERROR", f"{name} must be a string", {"field": name})
        if raw is not None:
            values[name] = raw
    if payload.get("custom") is not None:
        values["custom"] = stringify_custom(payload["custom"])
    for name in CONSENT_FIELDS:
        raw = payload.get(name)
        if raw is None:
            continue
        if isinstance(raw, str) and raw.lower() in ("granted", "denied"):
            raw = raw.lower() == "granted"
        if not isinstance(raw, bool):
            raise ApiError(400, "VALIDATION_ERROR", f"{name} must be a boolean", {"field": name})
        values[name] = raw
    lead = store.add_lead(source=_API_SOURCE, **values)
    return ok({"id": lead["id"], "message": "Lead added"}, server_time=store.server_time())


def _patch_leads(store: LeadStore, body: bytes) -> Response:
    payload = json_object(body, what="Updating a lead")
    field_name, wanted = _patch_identifier(payload)
    status = _patch_status(payload)
    value: int | float | None = None
    if payload.get("value") is not None:
        try:
            value = number(payload["value"], "value")
        except ValueError as exc:
            raise ApiError(400, "VALIDATION_ERROR", str(exc), {"field": "value"}) from None
    note, loss_reason = _optional_text(payload, "note"), _optional_text(payload, "lossReason")
    if status is None and value is None and note is None:
        raise ApiError(400, "VALIDATION_ERROR", "Nothing to update: send status, value or note")
    also_qualified = payload.get("alsoQualified") is True
    with store._lock:
        matches = _matching_leads(store, field_name, wanted)
        if not matches:
            raise ApiError(404, "NOT_FOUND", f"No lead matches {field_name} {wanted}", {field_name: wanted})
        if len(matches) > 1 and not store.bulk_updates:
            raise ApiError(
                409,
                "CONFLICT",
                f"{len(matches)} leads match {field_name} {wanted}; use a more specific identifier",
                {field_name: wanted, "matches": len(matches)},
            )
        stamp = store.stamp()
        for lead in matches:
            if note is not None:
                lead["note"] = note
            store.apply_change(lead, stamp, status, value, loss_reason, also_qualified=also_qualified)
        data = {
            "leadId": matches[0]["id"],
            "leadsUpdated": len(matches),
            "message": "Lead updated successfully",
        }
    return ok(data, server_time=store.server_time())


def _patch_identifier(payload: Mapping[str, Any]) -> tuple[str, str]:
    """The identifier ``PATCH /leads`` matches on: ``id``, else ``email``, else ``phone``."""
    for name in ("id", "email", "phone"):
        raw = payload.get(name)
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            raise ApiError(400, "VALIDATION_ERROR", f"{name} must be a string", {"field": name})
        return name, raw
    raise ApiError(400, "VALIDATION_ERROR", "Send id, email or phone to identify the lead")


def _patch_status(payload: Mapping[str, Any]) -> str | None:
    """The new status of ``PATCH /leads``: ``status``, else the legacy ``changedTo``; never ``open``."""
    raw = payload.get("status") if payload.get("status") is not None else payload.get("changedTo")
    if raw is None:
        return None
    try:
        return normalize_status(raw, allowed=SETTABLE_STATUSES)
    except ValueError:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"status must be one of {', '.join(SETTABLE_STATUSES)}",
            {"field": "status", "value": raw},
        ) from None


def _optional_text(payload: Mapping[str, Any], name: str) -> str | None:
    raw = payload.get(name)
    if raw is not None and not isinstance(raw, str):
        raise ApiError(400, "VALIDATION_ERROR", f"{name} must be a string", {"field": name})
    return raw


def _matching_leads(store: LeadStore, field_name: str, wanted: str) -> list[dict[str, Any]]:
    """
    The stored leads ``PATCH /leads`` applies to, in insertion order.

    An id names one lead: looked up directly (a sync of 100,000 rows by id would otherwise scan
    every lead per row), and scanned for only when no lead has exactly that id.
    """
    if field_name == "id":
        lead = store._leads.get(wanted.strip())
        if lead is not None:
            return [lead]
    return [lead for lead in store._leads.values() if _identifies(lead, field_name, wanted)]


def _identifies(lead: Mapping[str, Any], field_name: str, wanted: str) -> bool:
    stored = lead.get(field_name)
    if not isinstance(stored, str):
        return False
    if field_name == "email":
        return stored.strip().lower() == wanted.strip().lower()
    return stored.strip() == wanted.strip()
