"""
Reading Octanist's answers: the JSON envelope, request ids, leads and rows, and 1.0-era bodies.

Turns an :class:`~airflow_provider_octanist._api.calls.Answer` into data or the right error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._api.calls import Call, request_id_of
from airflow_provider_octanist._api.errors import error_fields, kind_of_code, make_error
from airflow_provider_octanist._lead_vocabulary import LEAD_STATUSES, LEGACY_ALIASES
from airflow_provider_octanist.exceptions import OctanistResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_octanist._api.settings import Settings


def decode_json(
    call: Call, status: int, headers: Mapping[str, str], content: bytes, settings: Settings
) -> Any:
    """Decode a body as JSON, or raise :class:`OctanistResponseError` describing what came instead."""
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        content_type = headers.get("Content-Type") or "no content type"
        snippet = content[:80].decode("utf-8", "replace").replace("\n", " ").strip()
        raise OctanistResponseError(
            f"Octanist answered {call.label} with HTTP {status} and a body that is not JSON "
            f"({content_type}, {len(content)} bytes: {snippet!r})",
            status_code=status,
            request_id=headers.get("X-Request-Id"),
            hint=f"Check that the connection {settings.conn_id!r} points at the Octanist API "
            f"(base URL {settings.base_url}); a proxy or an outage page can answer like this.",
        ) from None


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
        code, message, details = error_fields(payload)
        kind = kind_of_code(code)
        if kind is None:
            raise OctanistResponseError(
                f"Octanist answered {call.label} with HTTP {status} but success: false"
                + (f": {message}" if message else ""),
                status_code=status,
                code=code,
                request_id=request_id,
                hint="The API may have changed; please report it with the request id.",
            )
        raise make_error(
            kind,
            call,
            settings,
            status=status,
            code=code,
            message=message,
            request_id=request_id,
            details=details,
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


def check_row(row: Any, call: Call, request_id: str | None) -> dict[str, Any]:
    """Make sure a row of a report (ad spend) is an object."""
    if not isinstance(row, dict):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with a row of type {type(row).__name__}, expected an object",
            request_id=request_id,
        )
    return dict(row)


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
