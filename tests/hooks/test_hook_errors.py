"""Every API error code and every malformed answer becomes the documented, actionable exception."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

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
    from collections.abc import Callable

    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.testing import FakeOctanistServer

    from .conftest import Twin


def _add_lead(server: FakeOctanistServer) -> str:
    """Store the lead the test reads, so only the injected fault can make the read fail."""
    return server.add_lead(id="lead_1")["id"]


@pytest.mark.parametrize(
    ("status", "code", "error", "words"),
    [
        (400, "VALIDATION_ERROR", OctanistValidationError, "refused GET /leads/lead_1 as invalid"),
        (400, "INVALID_FILTER", OctanistValidationError, "refused GET /leads/lead_1 as invalid"),
        (400, "INVALID_DATE", OctanistValidationError, "refused GET /leads/lead_1 as invalid"),
        (401, "UNAUTHORIZED", OctanistAuthError, "rejected the API key of connection 'octanist_default'"),
        (403, "FORBIDDEN", OctanistAuthError, "did not allow GET /leads/lead_1"),
        (404, "NOT_FOUND", OctanistNotFoundError, "found nothing for GET /leads/lead_1"),
        (409, "CONFLICT", OctanistConflictError, "conflict for GET /leads/lead_1"),
        (422, "VALIDATION_ERROR", OctanistValidationError, "refused GET /leads/lead_1 as invalid"),
    ],
)
def test_client_errors_raise_their_exception_at_once(
    hook: Twin,
    octanist_server: FakeOctanistServer,
    waits: list[float],
    status: int,
    code: str,
    error: type[OctanistError],
    words: str,
) -> None:
    lead_id = _add_lead(octanist_server)
    octanist_server.inject("status", status=status, code=code, message="what Octanist said", count=5)

    with pytest.raises(error) as caught:
        hook.get_lead(lead_id)

    exc = caught.value
    assert (exc.status_code, exc.code) == (status, code)
    assert words in exc.message
    assert exc.message.endswith(": what Octanist said")
    assert exc.request_id is not None
    assert exc.request_id.startswith("req_")
    assert f"({status} {code}, request {exc.request_id})" in str(exc)
    assert exc.hint
    assert str(exc).endswith(exc.hint)
    assert octanist_server.request_count() == 1, "a client error is never retried"
    assert waits == []


def test_a_legacy_flat_401_body_is_an_auth_error(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    lead_id = _add_lead(octanist_server)
    octanist_server.inject("status", status=401, body=json.dumps({"error": "Invalid or missing API key"}))

    with pytest.raises(OctanistAuthError) as caught:
        hook.get_lead(lead_id)

    assert caught.value.status_code == 401
    assert caught.value.code is None
    assert caught.value.message == (
        "Octanist rejected the API key of connection 'octanist_default': Invalid or missing API key"
    )
    assert octanist_server.request_count() == 1


def test_a_wrong_key_is_an_auth_error_on_every_endpoint(
    make_twin: Callable[..., Twin], connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    connect(password="revoked-key")
    twin = make_twin()
    calls: list[Callable[[], Any]] = [
        lambda: twin.get_lead("lead_1"),
        twin.list_leads,
        twin.get_stats,
        lambda: twin.get_ad_spend("2026-03-01", "2026-03-02"),
    ]

    for call in calls:
        with pytest.raises(OctanistAuthError, match="Check the connection's password") as caught:
            call()
        assert (caught.value.status_code, caught.value.code) == (401, "UNAUTHORIZED")
    assert octanist_server.request_count() == len(calls)


def test_a_failed_create_reports_the_server_validation(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("status", status=403, code="FORBIDDEN", message="Lead rejected by filtering rules")

    with pytest.raises(OctanistAuthError, match="Lead rejected by filtering rules") as caught:
        sync_hook.create_lead(email="spam@example.com")

    assert caught.value.status_code == 403
    assert octanist_server.request_count("POST", "/api/leads") == 1


def test_rate_limiting_that_outlasts_the_retries_raises_rate_limit_error(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("status", status=429, count=10)

    with pytest.raises(OctanistRateLimitError) as caught:
        hook.list_leads()

    assert caught.value.status_code == 429
    assert caught.value.message.startswith("Octanist kept rate-limiting GET /leads after 3 retries")
    assert "raise max_retries" in str(caught.value)
    assert octanist_server.request_count() == 4  # the first try and max_retries (3) more
    assert len(waits) == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_that_outlast_the_retries_raise_server_error(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float], status: int
) -> None:
    octanist_server.inject("status", status=status, count=10)

    with pytest.raises(OctanistServerError) as caught:
        hook.get_stats()

    assert caught.value.status_code == status
    assert caught.value.message.startswith("Octanist failed POST /stats with a server error after 3 retries")
    assert "the task can be retried later" in str(caught.value)
    assert octanist_server.request_count() == 4
    assert len(waits) == 3


def test_an_html_error_page_from_a_gateway_is_retried_then_a_server_error(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("status", status=502, body="<html><body>Bad gateway</body></html>", count=10)

    with pytest.raises(OctanistServerError) as caught:
        hook.list_leads()

    assert (caught.value.status_code, caught.value.code) == (502, None)
    assert octanist_server.request_count() == 4


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html><body>Bad gateway</body></html>", "text/html; charset=utf-8"),
        ("upstream connect error or disconnect/reset before headers", "text/plain"),
        ("", "application/json"),
    ],
)
def test_a_body_that_is_not_json_raises_response_error(
    hook: Twin, octanist_server: FakeOctanistServer, body: str, content_type: str
) -> None:
    octanist_server.inject("garbage", body=body, content_type=content_type)

    with pytest.raises(OctanistResponseError) as caught:
        hook.list_leads()

    message = str(caught.value)
    assert message.startswith("Octanist answered GET /leads with HTTP 200 and a body that is not JSON")
    assert content_type in message
    assert f"{len(body.encode())} bytes" in message
    assert body[:40] in message
    assert "points at the Octanist API" in message
    assert octanist_server.request_count() == 1


def test_a_redirect_is_not_followed(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.inject("status", status=302, body="")

    with pytest.raises(OctanistResponseError, match="Redirects are not followed") as caught:
        hook.get_stats()

    assert caught.value.status_code == 302
    assert octanist_server.request_count() == 1


# -- well-formed JSON that is not the documented answer ----------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "status_words"),
    [
        ("NOT_FOUND", OctanistNotFoundError, "200 NOT_FOUND"),
        ("UNAUTHORIZED", OctanistAuthError, "200 UNAUTHORIZED"),
        ("VALIDATION_ERROR", OctanistValidationError, "200 VALIDATION_ERROR"),
    ],
)
def test_success_false_with_http_200_raises_the_error_its_code_names(
    hook: Twin, octanist_server: FakeOctanistServer, code: str, error: type[OctanistError], status_words: str
) -> None:
    payload = {
        "success": False,
        "error": {"code": code, "message": "nope"},
        "meta": {"requestId": "req_0123456789ab"},
    }
    octanist_server.inject("json", payload=payload)

    with pytest.raises(error) as caught:
        hook.get_lead("lead_1")

    assert caught.value.status_code == 200  # the status line, reported as it was
    assert caught.value.request_id == "req_0123456789ab"
    assert f"({status_words}, request req_0123456789ab)" in str(caught.value)
    assert octanist_server.request_count() == 1


def test_success_false_without_a_known_code_raises_response_error(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("json", payload={"success": False})

    with pytest.raises(OctanistResponseError, match="with HTTP 200 but success: false"):
        hook.get_stats()


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"success": True, "meta": {}}, "without the documented 'data' field"),
        ({"success": True, "data": None}, "with data of type NoneType, expected dict"),
        ({"success": True, "data": ["lead_1"]}, "with data of type list, expected dict"),
        ({"success": True, "data": {"name": "no id"}}, "with a lead that has no string 'id'"),
        ({"success": True, "data": {"id": 42}}, "with a lead that has no string 'id'"),
        ({"success": True, "data": {"id": ""}}, "with a lead that has no string 'id'"),
        ({"success": True, "data": {"id": "lead_1", "status": 3}}, "Lead lead_1 has a status of type int"),
        ([1, 2], "without the documented 'data' field"),
        ("lead_1", "without the documented 'data' field"),
    ],
)
def test_get_lead_rejects_answers_of_the_wrong_shape(
    hook: Twin, octanist_server: FakeOctanistServer, payload: Any, words: str
) -> None:
    octanist_server.inject("json", payload=payload)

    with pytest.raises(OctanistResponseError, match=words):
        hook.get_lead("lead_1")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"success": True, "data": {"id": "lead_1"}}, "with data of type dict, expected list"),
        ({"success": True, "data": "leads"}, "with data of type str, expected list"),
        ({"success": True, "data": [{"id": "lead_1"}, None]}, "with a lead that has no string 'id'"),
        ({"success": True, "data": [{"id": "lead_1", "status": ["won"]}]}, "has a status of type list"),
        (
            {"success": True, "data": [{"id": "lead_1"}], "meta": {"pagination": {"hasMore": "yes"}}},
            "pagination.hasMore of type str",
        ),
    ],
)
def test_list_leads_rejects_answers_of_the_wrong_shape(
    hook: Twin, octanist_server: FakeOctanistServer, payload: Any, words: str
) -> None:
    octanist_server.inject("json", payload=payload)

    with pytest.raises(OctanistResponseError, match=words):
        hook.list_leads()


def test_ad_spend_rows_must_be_objects(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.inject("json", payload={"success": True, "data": [1.5]})

    with pytest.raises(OctanistResponseError, match="with a row of type float, expected an object"):
        hook.get_ad_spend("2026-03-01", "2026-03-02")


def test_create_answer_without_an_id_raises_response_error(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("json", payload={"success": True, "data": {"message": "Lead added"}})

    with pytest.raises(OctanistResponseError, match="without the new lead's id") as caught:
        sync_hook.create_lead(name="x")

    assert "check with list_leads(search=...)" in str(caught.value)
