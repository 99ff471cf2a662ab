"""
The error table: the exception each HTTP status and API error code becomes, and the message, hint
and fields an error of a non-2xx answer carries.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from _api.conftest import CREATE, LIST, SETTINGS
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._api.errors import error_fields, kind_of_code, kind_of_status
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistConflictError,
    OctanistNotFoundError,
    OctanistRateLimitError,
    OctanistResponseError,
    OctanistServerError,
    OctanistValidationError,
)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, OctanistValidationError),
        (401, OctanistAuthError),
        (403, OctanistAuthError),
        (404, OctanistNotFoundError),
        (409, OctanistConflictError),
        (422, OctanistValidationError),
        (429, OctanistRateLimitError),
        (500, OctanistServerError),
        (502, OctanistServerError),
        (599, OctanistServerError),
        (302, OctanistResponseError),
        (418, OctanistResponseError),
    ],
)
def test_each_status_has_its_error(status: int, error: type[Exception]) -> None:
    assert kind_of_status(status).error is error


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("UNAUTHORIZED", OctanistAuthError),
        ("FORBIDDEN", OctanistAuthError),
        ("NOT_FOUND", OctanistNotFoundError),
        ("CONFLICT", OctanistConflictError),
        ("VALIDATION_ERROR", OctanistValidationError),
        ("INVALID_FILTER", OctanistValidationError),
        ("INVALID_DATE", OctanistValidationError),
        ("RATE_LIMITED", OctanistRateLimitError),
        ("INTERNAL_ERROR", OctanistServerError),
        ("SOMETHING_NEW", None),
        (None, None),
    ],
)
def test_each_documented_code_has_its_error_and_another_none(code: str | None, error: type | None) -> None:
    kind = kind_of_code(code)

    assert (None if kind is None else kind.error) is error


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        (
            {"error": {"code": "NOT_FOUND", "message": "no lead", "details": {"id": 1}}},
            ("NOT_FOUND", "no lead", {"id": 1}),
        ),
        ({"error": "legacy message"}, (None, "legacy message", None)),
        ({"error": {"code": 7, "message": ["x"]}}, (None, None, None)),
        ({"success": False}, (None, None, None)),
        ([1, 2], (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_an_error_bodys_code_message_and_details_are_read_when_they_are_what_they_should_be(
    payload: Any, fields: tuple[Any, ...]
) -> None:
    assert error_fields(payload) == fields


@pytest.mark.parametrize(
    ("call", "status", "retries", "text", "hint"),
    [
        (LIST, 404, 0, "Octanist found nothing for GET /leads: gone", "Check the lead id"),
        (
            LIST,
            503,
            2,
            "Octanist failed GET /leads with a server error after 2 retries: gone",
            "This is on Octanist's side",
        ),
        (CREATE, 500, 0, "Octanist failed POST /leads with a server error: gone", "It was not sent again"),
        (
            LIST,
            429,
            1,
            "Octanist kept rate-limiting GET /leads after 1 retry: gone",
            "Lower the request rate",
        ),
        (
            LIST,
            301,
            0,
            "Octanist answered GET /leads with unexpected HTTP 301: gone",
            "Redirects are not followed",
        ),
    ],
)
def test_an_answers_error_says_the_call_the_retries_and_octanists_message_with_a_hint(
    call: api.Call, status: int, retries: int, text: str, hint: str
) -> None:
    content = json.dumps({"error": {"code": "X", "message": "gone"}, "meta": {"requestId": "req_1"}}).encode()

    error = api.error_for(call, status, {}, content, SETTINGS, retries=retries)

    assert str(error).startswith(text)
    assert error.hint is not None
    assert error.hint.startswith(hint)
    assert (error.status_code, error.code, error.request_id) == (status, "X", "req_1")


def test_an_error_body_that_is_not_json_still_gives_the_statuses_error() -> None:
    error = api.error_for(LIST, 401, {"X-Request-Id": "req_2"}, b"<html>nope</html>", SETTINGS)

    assert type(error) is OctanistAuthError
    assert (error.code, error.request_id) == (None, "req_2")
