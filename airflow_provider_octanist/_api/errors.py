"""
The error table: which exception, message and hint each HTTP status and API error code becomes.

One row per kind of failure; used for non-2xx answers and for 2xx answers saying ``success: false``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._api.calls import Call, request_id_of
from airflow_provider_octanist._api.json_values import too_many_values
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap
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
    from collections.abc import Mapping

    from airflow_provider_octanist._api.settings import Settings


@dataclass(frozen=True)
class ErrorKind:
    """
    One row of the table: a kind of failure, how Octanist signals it and what the user reads.

    ``text`` is formatted with ``call`` (e.g. ``GET /leads``), ``conn`` (the connection id),
    ``said`` (``": "`` + Octanist's message, or nothing) and ``after`` (the retries, or nothing).
    """

    error: type[OctanistError]
    statuses: tuple[int, ...]
    codes: tuple[str, ...]
    text: str
    hint: str | None


ERRORS: tuple[ErrorKind, ...] = (
    ErrorKind(
        OctanistAuthError,
        (401,),
        ("UNAUTHORIZED",),
        "Octanist rejected the API key of connection {conn!r}{said}",
        "Check the connection's password: it must be a current API key of the right organization.",
    ),
    ErrorKind(
        OctanistAuthError,
        (403,),
        ("FORBIDDEN",),
        "Octanist did not allow {call} for the API key of connection {conn!r}{said}",
        "The key is valid but this action is not allowed (e.g. the organization's lead filtering "
        "rules rejected it); check the key's organization and its settings.",
    ),
    ErrorKind(
        OctanistNotFoundError,
        (404,),
        ("NOT_FOUND",),
        "Octanist found nothing for {call}{said}",
        "Check the lead id, email or phone; ids look like 'lead_abc123'.",
    ),
    ErrorKind(
        OctanistConflictError,
        (409,),
        ("CONFLICT",),
        "Octanist reported a conflict for {call}{said}",
        "Use a more specific identifier (the lead id), or enable bulk updates for the organization.",
    ),
    ErrorKind(
        OctanistValidationError,
        (400, 422),
        ("VALIDATION_ERROR", "INVALID_FILTER", "INVALID_DATE"),
        "Octanist refused {call} as invalid{said}",
        "Fix the request; it is not retried.",
    ),
    ErrorKind(
        OctanistRateLimitError,
        (429,),
        ("RATE_LIMITED",),
        "Octanist kept rate-limiting {call}{after}{said}",
        "Lower the request rate (fewer parallel tasks, a longer poll interval) or raise max_retries.",
    ),
    ErrorKind(
        OctanistServerError,
        (500,),
        ("INTERNAL_ERROR",),
        "Octanist failed {call} with a server error{after}{said}",
        "This is on Octanist's side; the task can be retried later.",
    ),
)
"""Every documented kind of failure; any other 5xx is a server error too."""

_SERVER_ERROR = ERRORS[-1]
_UNEXPECTED = ErrorKind(
    OctanistResponseError, (), (), "Octanist answered {call} with unexpected HTTP {status}{said}", None
)
_NOT_REPLAYED_HINT = (
    "It was not sent again because Octanist may have processed it; check whether it took effect "
    "(e.g. list_leads(search=...)) before repeating it."
)
_REDIRECT_HINT = (
    "Redirects are not followed, so the API key is never sent elsewhere; set the connection's "
    "host to the final API URL."
)


def kind_of_status(status: int) -> ErrorKind:
    """The row of an HTTP status (any 5xx is a server error; anything else unknown is unexpected)."""
    for kind in ERRORS:
        if status in kind.statuses:
            return kind
    return _SERVER_ERROR if status >= 500 else _UNEXPECTED


def kind_of_code(code: str | None) -> ErrorKind | None:
    """The row of an API error code, or ``None`` for a code Octanist does not document."""
    return next((kind for kind in ERRORS if code in kind.codes), None)


def error_fields(payload: Any) -> tuple[str | None, str | None, Any]:
    """The ``(code, message, details)`` of an error body; a legacy body has only a message string."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, str):
        return None, cap(error), None
    if not isinstance(error, dict):
        return None, None, None
    code, message = error.get("code"), error.get("message")
    # Capped: a server may answer with megabytes of message, which no exception should carry.
    return (
        cap(code, MAX_SERVER_WORD) if isinstance(code, str) else None,
        cap(message) if isinstance(message, str) else None,
        error.get("details"),
    )


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
        # An error body that would decode into millions of values is read as no body at all.
        payload: Any = json.loads(content) if content and not too_many_values(content) else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    code, message, details = error_fields(payload)
    return make_error(
        kind_of_status(status),
        call,
        settings,
        status=status,
        code=code,
        message=message,
        request_id=request_id_of(payload, headers),
        details=details,
        retries=retries,
    )


def make_error(
    kind: ErrorKind,
    call: Call,
    settings: Settings,
    *,
    status: int,
    code: str | None,
    message: str | None,
    request_id: str | None,
    details: Any,
    retries: int = 0,
) -> OctanistError:
    """
    Build the error of a failed call from its row of the table.

    :param status: the HTTP status the answer came with.
    :param retries: how many times the call was retried before this answer, for the message.
    """
    text = kind.text.format(
        call=call.label,
        conn=settings.conn_id,
        status=status,
        said=f": {message}" if message else "",
        after=f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else "",
    )
    hint = kind.hint
    if kind is _SERVER_ERROR and not call.replay_safe:
        hint = _NOT_REPLAYED_HINT
    if 300 <= status < 400:
        hint = _REDIRECT_HINT
    return kind.error(text, status_code=status, code=code, request_id=request_id, hint=hint, details=details)
