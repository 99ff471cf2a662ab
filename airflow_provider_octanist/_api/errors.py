"""
The error table: which exception, message and hint each HTTP status and API error code becomes.

One row per kind of failure; used for non-2xx answers and for 2xx answers saying ``success: false``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._api.calls import Call, request_id_of
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistConflictError,
    OctanistError,
    OctanistNotFoundError,
    OctanistRateLimitError,
    OctanistResponseError,
    OctanistServerError,
    OctanistValidationError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_octanist._api.settings import Settings


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
