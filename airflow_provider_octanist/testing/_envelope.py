"""
The API's answer shapes: the ``{success, data, meta}`` envelope, error answers and their codes.

Endpoints raise ``ApiError``; everything that goes back to a client is a ``Response``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._lead_fields import format_timestamp, new_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

ERROR_CODES: dict[int, str] = {
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
ERROR_MESSAGES: dict[int, str] = {
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
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
NO_TIMESTAMP = ""
"""A ``server_time`` that leaves ``meta.timestamp`` out of the answer altogether."""


class ApiError(Exception):
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
class Response:
    """One HTTP answer: status, body bytes and headers (``Content-Length`` is added when sent)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def meta(
    request_id: str,
    pagination: Mapping[str, Any] | None = None,
    precision: str = "ms",
    server_time: str | None = None,
) -> dict[str, Any]:
    """
    The envelope's ``meta``: pagination (list calls only), request id and the server's time.

    :param server_time: ``meta.timestamp`` as the store's clock writes it; now when not given;
        ``NO_TIMESTAMP`` leaves it out.
    """
    result: dict[str, Any] = {}
    if pagination is not None:
        result["pagination"] = dict(pagination)
    result["requestId"] = request_id
    if server_time != NO_TIMESTAMP:
        result["timestamp"] = server_time or format_timestamp(datetime.now(timezone.utc), precision)
    return result


def json_bytes(payload: Any) -> bytes:
    """Compact JSON; non-finite floats come out as the bare ``NaN``/``Infinity`` tokens."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def json_response(
    status: int, payload: Any, request_id: str | None = None, extra_headers: Iterable[tuple[str, str]] = ()
) -> Response:
    """A JSON answer with ``X-Request-Id`` when a request id is given."""
    headers = [("Content-Type", JSON_CONTENT_TYPE)]
    if request_id is not None:
        headers.append(("X-Request-Id", request_id))
    headers.extend(extra_headers)
    return Response(status, json_bytes(payload), tuple(headers))


def ok(
    data: Any,
    pagination: Mapping[str, Any] | None = None,
    precision: str = "ms",
    server_time: str | None = None,
) -> Response:
    """A ``200`` success envelope around ``data`` (``server_time``: as for ``meta``)."""
    request_id = new_id("req_")
    envelope = {"success": True, "data": data, "meta": meta(request_id, pagination, precision, server_time)}
    return json_response(200, envelope, request_id)


def error(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """An error envelope: ``{"success": false, "error": {code, message, details}, "meta": ...}``."""
    request_id = new_id("req_")
    payload = {
        "success": False,
        "error": {"code": code, "message": message, "details": dict(details or {})},
        "meta": meta(request_id),
    }
    return json_response(status, payload, request_id, extra_headers)


def error_for(status: int, code: str | None = None, message: str | None = None, **kwargs: Any) -> Response:
    """An error envelope for ``status`` with the API's usual code and message unless given."""
    code = code or ERROR_CODES.get(status) or ("INTERNAL_ERROR" if status >= 500 else "ERROR")
    message = message or ERROR_MESSAGES.get(status) or f"HTTP {status}"
    return error(status, code, message, **kwargs)
