"""The error types: a small hierarchy callers catch at the level they care about, with actionable text."""

from __future__ import annotations

import pickle

import pytest
from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_octanist import _api as api
from airflow_provider_octanist import exceptions
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistConflictError,
    OctanistConnectionError,
    OctanistError,
    OctanistNotFoundError,
    OctanistRateLimitError,
    OctanistResponseError,
    OctanistServerError,
    OctanistTimeoutError,
    OctanistValidationError,
)

KEY = "sk-live-never-shown-123"
SETTINGS = api.Settings(conn_id="octanist_sales", base_url="https://octanist.com/api", api_key=KEY)
GET_LEAD = api.Call("GET", "/leads/lead_1")


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (OctanistError, AirflowException),
        (OctanistAuthError, OctanistError),
        (OctanistNotFoundError, OctanistError),
        (OctanistValidationError, OctanistError),
        (OctanistConflictError, OctanistValidationError),
        (OctanistRateLimitError, OctanistError),
        (OctanistServerError, OctanistError),
        (OctanistResponseError, OctanistError),
        (OctanistConnectionError, OctanistError),
        (OctanistTimeoutError, OctanistConnectionError),
    ],
)
def test_the_hierarchy(error: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(error, parent)


def test_every_public_error_is_exported() -> None:
    public = {name for name in vars(exceptions) if name.startswith("Octanist")}

    assert set(exceptions.__all__) == public


def test_an_error_carries_its_facts_and_says_what_to_do() -> None:
    error = OctanistNotFoundError(
        "Octanist found nothing for GET /leads/lead_1",
        status_code=404,
        code="NOT_FOUND",
        request_id="req_0123456789ab",
        hint="Check the lead id",
        details={"id": "lead_1"},
    )

    assert (error.status_code, error.code, error.request_id, error.details) == (
        404,
        "NOT_FOUND",
        "req_0123456789ab",
        {"id": "lead_1"},
    )
    assert error.message == "Octanist found nothing for GET /leads/lead_1"
    assert str(error) == (
        "Octanist found nothing for GET /leads/lead_1 (404 NOT_FOUND, request req_0123456789ab). "
        "Check the lead id"
    )


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({}, "Something failed"),
        ({"status_code": 502}, "Something failed (502)"),
        ({"code": "INTERNAL_ERROR"}, "Something failed (INTERNAL_ERROR)"),
        ({"request_id": "req_1"}, "Something failed (request req_1)"),
        ({"hint": "Try later."}, "Something failed. Try later."),
    ],
)
def test_the_text_shows_only_the_facts_it_has(kwargs: dict[str, object], text: str) -> None:
    assert str(OctanistError("Something failed", **kwargs)) == text  # type: ignore[arg-type]


def test_a_connection_error_says_whether_the_request_may_have_reached_octanist() -> None:
    assert OctanistConnectionError("refused", may_have_reached_server=False).may_have_reached_server is False
    assert OctanistTimeoutError("slow").may_have_reached_server is True


@pytest.mark.parametrize(
    "error",
    [
        OctanistConflictError(
            "conflict", status_code=409, code="CONFLICT", request_id="req_1", hint="h", details={"n": 2}
        ),
        OctanistTimeoutError("slow", may_have_reached_server=False, hint="raise the timeout"),
        OctanistError("plain"),
    ],
)
def test_errors_survive_pickling(error: OctanistError) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_errors_can_be_caught_as_airflow_exceptions() -> None:
    with pytest.raises(AirflowException, match="no such lead"):
        raise OctanistNotFoundError("no such lead")


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (400, OctanistValidationError, "Octanist refused GET /leads/lead_1 as invalid: bad"),
        (401, OctanistAuthError, "Octanist rejected the API key of connection 'octanist_sales': bad"),
        (403, OctanistAuthError, "Octanist did not allow GET /leads/lead_1 for the API key of connection"),
        (404, OctanistNotFoundError, "Octanist found nothing for GET /leads/lead_1: bad"),
        (409, OctanistConflictError, "Octanist reported a conflict for GET /leads/lead_1: bad"),
        (422, OctanistValidationError, "Octanist refused GET /leads/lead_1 as invalid: bad"),
        (429, OctanistRateLimitError, "Octanist kept rate-limiting GET /leads/lead_1 after 2 retries: bad"),
        (
            500,
            OctanistServerError,
            "Octanist failed GET /leads/lead_1 with a server error after 2 retries: bad",
        ),
        (418, OctanistResponseError, "Octanist answered GET /leads/lead_1 with unexpected HTTP 418: bad"),
    ],
)
def test_error_for_maps_each_status_to_its_error(status: int, error: type[OctanistError], text: str) -> None:
    body = b'{"success": false, "error": {"code": "X", "message": "bad"}, "meta": {"requestId": "req_7"}}'

    built = api.error_for(GET_LEAD, status, {}, body, SETTINGS, retries=2)

    assert type(built) is error
    assert built.message.startswith(text)
    assert (built.status_code, built.code, built.request_id) == (status, "X", "req_7")
    assert KEY not in str(built)
    assert KEY not in repr(built)


def test_error_for_reads_the_request_id_header_when_the_body_is_not_json() -> None:
    built = api.error_for(GET_LEAD, 503, {"X-Request-Id": "req_h"}, b"<html>", SETTINGS)

    assert (type(built), built.code, built.request_id) == (OctanistServerError, None, "req_h")
    assert built.message == "Octanist failed GET /leads/lead_1 with a server error"
