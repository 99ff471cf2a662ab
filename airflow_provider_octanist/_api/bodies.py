"""
The JSON bodies of the writing and reporting calls: create and update a lead, stats, ad spend.

Each is validated before anything is sent; also the checks of page numbers and result caps.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._checks import check_lead_id, non_empty_text, positive_number, whole_number
from airflow_provider_octanist._lead_vocabulary import CONSENT_FIELDS, CREATE_FIELDS, UPDATE_FIELDS
from airflow_provider_octanist._timestamps import format_day
from airflow_provider_octanist.statuses import SETTABLE_STATUSES, normalize_status

if TYPE_CHECKING:
    from collections.abc import Mapping


MAX_AD_SPEND_PAGE_SIZE = 500


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
            body[name] = _custom_text(value)
        elif name in CONSENT_FIELDS:
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


def _custom_text(value: Any) -> str:
    """
    ``custom`` as Octanist's production documentation has it, a string: a dict or list is sent as its JSON.

    A string is sent unchanged (the API stores it as given, JSON or not).
    """
    if isinstance(value, str):
        return value
    if not isinstance(value, (dict, list)):
        raise ValueError(f"custom must be a string, a dict or a list, got {type(value).__name__}.")
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        # json's own words ("Object of type datetime is not JSON serializable") name the culprit.
        raise ValueError(
            f"custom must hold only JSON values (strings, finite numbers, booleans, null, lists and "
            f"dicts with string keys): {exc}."
        ) from None


def update_lead_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """
    Validate a change of lead(s) (``PATCH /leads``) and return the JSON body.

    :param fields: the keyword arguments of ``update_lead`` (see ``types.LeadUpdate``); ``None``
        values are not given.
    """
    unknown = sorted(set(fields) - set(UPDATE_FIELDS))
    if unknown:
        raise TypeError(f"update_lead() got an unexpected keyword argument {unknown[0]!r}")
    given = {name: value for name, value in fields.items() if value is not None}
    body: dict[str, Any] = {}
    if "lead_id" in given:
        body["id"] = check_lead_id(given["lead_id"])
    for name in ("email", "phone"):
        if name in given:
            body[name] = non_empty_text(given[name], name)
    if not body:
        raise ValueError("update_lead() needs lead_id, email or phone to say which lead to change.")
    if "status" in given:
        body["status"] = normalize_status(given["status"], allowed=SETTABLE_STATUSES)
    if "value" in given:
        body["value"] = _lead_value(given["value"])
    if "note" in given:
        if not isinstance(given["note"], str):
            raise ValueError(f"note must be a string, got {type(given['note']).__name__}.")
        body["note"] = given["note"]
    if "loss_reason" in given:
        if body.get("status") != "lost":
            raise ValueError("loss_reason is only kept when status='lost'; pass both together.")
        body["lossReason"] = non_empty_text(given["loss_reason"], "loss_reason")
    if not set(body) - {"id", "email", "phone"}:
        raise ValueError("update_lead() has nothing to change: pass status, value, note or loss_reason.")
    return body


def _lead_value(value: Any) -> float | int:
    number = positive_number(value, "value", zero=True, text=True, must_be="a finite, non-negative number")
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
        "limit": whole_number(page_size, "page_size", low=1, high=MAX_AD_SPEND_PAGE_SIZE),
    }
    if body["startDate"] > body["endDate"]:
        raise ValueError(f"start_date {body['startDate']} is after end_date {body['endDate']}.")
    if platform is not None:
        body["platform"] = non_empty_text(platform, "platform")
    if group_by is not None:
        body["groupBy"] = non_empty_text(group_by, "group_by")
    return body


def max_results_value(max_results: int | None) -> int | None:
    """Validate a cap on the number of results (``None`` for no cap)."""
    return None if max_results is None else whole_number(max_results, "max_results", low=1)


def page_number(page: int) -> int:
    """Validate a 1-based page number."""
    return whole_number(page, "page", low=1)
