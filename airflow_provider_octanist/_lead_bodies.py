"""
What a lead's create and update bodies may hold, validated: ``POST /leads`` and ``PATCH /leads``.

Shared by the hooks, which send them, and the write-back, which checks each row as the hook would.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._checks import check_lead_id, non_empty_text, positive_number
from airflow_provider_octanist._lead_vocabulary import CONSENT_FIELDS, CREATE_FIELDS, UPDATE_FIELDS
from airflow_provider_octanist.statuses import SETTABLE_STATUSES, normalize_status

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["create_lead_body", "update_lead_body"]


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
