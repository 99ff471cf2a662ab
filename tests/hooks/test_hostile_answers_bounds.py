"""
The hook's side of answers and settings that must stay within bounds, sync and async alike: the
size cap, request ids, numeric settings, credentials in a host, bad gzip, finer time filters.

The change feed's bounds are tested in ``tests/triggers/``, the sensor's in ``tests/sensors/`` and
the export's in ``tests/transfers/``.
"""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest
from conftest import first_trigger_event

from airflow_provider_octanist.exceptions import OctanistNotFoundError, OctanistResponseError
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer
    from tests.hooks.conftest import Twin

MIB = 1024 * 1024


def _stats_requests(server: FakeOctanistServer) -> int:
    return server.request_count("POST", "/api/stats")


# -- 9: an answer's decoded size is capped --------------------------------------------------------


def test_a_gzip_bomb_stops_at_the_size_cap_and_is_read_no_further(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect(max_response_bytes=MIB, max_retries=3)
    # 64 GiB once decoded, about 66 MiB on the wire: far more than any buffer between the two.
    octanist_server.inject("huge", decoded_bytes=64 * 1024 * MIB, gzip=True)

    with pytest.raises(OctanistResponseError) as caught:
        hook.get_stats()

    assert "exceeded 1048576 bytes once decoded, the connection's max_response_bytes" in str(caught.value)
    assert "max_response_bytes of connection 'octanist_default'" in str(caught.value)
    [sent] = octanist_server.streamed_bytes()
    assert sent < 16 * MIB, f"the client read on: {sent} bytes of about 66 MiB were sent"
    assert _stats_requests(octanist_server) == 1, "a refused answer is not asked for again"


def test_a_huge_plain_answer_stops_at_the_size_cap(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect(max_response_bytes=MIB)
    octanist_server.inject("huge", decoded_bytes=256 * MIB)

    with pytest.raises(OctanistResponseError, match="exceeded 1048576 bytes once decoded"):
        hook.get_stats()

    [sent] = octanist_server.streamed_bytes()
    assert sent < 64 * MIB, f"the client read on: {sent} of {256 * MIB} bytes were sent"


def test_an_answer_within_the_cap_is_read_whole(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect(max_response_bytes=4 * MIB)
    octanist_server.inject("huge", decoded_bytes=3 * MIB, gzip=True)

    assert hook.get_stats() == {}
    assert len(octanist_server.streamed_bytes()) == 1


def test_the_default_size_cap_is_64_mib(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.inject("huge", decoded_bytes=64 * MIB + 1, gzip=True)

    with pytest.raises(OctanistResponseError, match="exceeded 67108864 bytes once decoded"):
        hook.get_stats()


# -- 10: a huge request id is capped ------------------------------------------------------------


def test_a_huge_request_id_is_capped_in_the_error(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    error = {"code": "NOT_FOUND", "message": "Lead not found"}
    octanist_server.inject(
        "transform",
        function=lambda payload: {"success": False, "error": error, "meta": {"requestId": "r" * 2_000_000}},
    )

    with pytest.raises(OctanistNotFoundError) as caught:
        hook.get_lead("lead_1")

    request_id = caught.value.request_id
    assert request_id is not None
    assert len(request_id) == 100
    assert request_id.endswith("\u2026")
    for text in (str(caught.value), repr(pickle.loads(pickle.dumps(caught.value)))):
        assert len(text) < 1_000


def test_a_huge_request_id_is_capped_in_a_trigger_event(
    octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect()
    body = {
        "success": False,
        "error": {"code": "UNAUTHORIZED", "message": "Invalid API key"},
        "meta": {"requestId": "r" * 2_000_000},
    }
    octanist_server.inject("status", status=401, count=None, body=json.dumps(body))
    event = first_trigger_event(OctanistLeadStatusTrigger("lead_1", poll_interval=0.05))

    assert event["status"] == "error"
    assert len(repr(event)) < 2_000


# -- 11: numeric extras out of range --------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            {"timeout": 1e10},
            "timeout must be a number of seconds above 0 and at most 3600, got 10000000000.0",
        ),
        ({"connect_timeout": 601}, "connect_timeout must be a number of seconds above 0 and at most 600"),
        ({"max_retries": 101}, "max_retries must be a whole number of retries from 0 and at most 100"),
        ({"retry_backoff": 61}, "retry_backoff must be a number of seconds above 0 and at most 60"),
        ({"max_response_bytes": 0}, "max_response_bytes must be a whole number of bytes above 0"),
        (
            {"max_response_bytes": 2**31},
            "max_response_bytes must be a whole number of bytes above 0 and at most",
        ),
    ],
)
def test_a_numeric_extra_out_of_range_is_a_value_error_and_the_test_button_answers(
    hook: Twin,
    octanist_server: FakeOctanistServer,
    connect: Callable[..., None],
    extra: dict[str, Any],
    words: str,
) -> None:
    connect(**extra)

    with pytest.raises(ValueError, match=words.replace(".", r"\.")) as caught:
        hook.get_lead("lead_1")
    assert caught.value.__cause__ is None
    assert not octanist_server.requests, "nothing is sent with a setting out of range"

    ok, message = hook.test_connection()
    assert not ok
    assert words in message


def test_a_hook_argument_out_of_range_is_refused_the_same_way(
    make_twin: Callable[..., Twin],
) -> None:
    twin = make_twin(timeout=1e10)

    ok, message = twin.test_connection()
    assert not ok
    assert "timeout must be a number of seconds above 0 and at most 3600" in message


# -- 12: credentials in a mistyped host -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "words"),
    [
        (
            "htps://:SECRET-KEY-42@octanist.com/api",
            "host 'htps://***@octanist.com/api' is not an http(s) URL",
        ),
        ("https://user:SECRET-KEY-42@octanist.com:99999/api", "host 'https://***@octanist.com:99999/api'"),
        ("https://:SECRET/KEY-42@octanist.com:99999/api", "host 'https://***@octanist.com:99999/api'"),
    ],
)
def test_credentials_in_a_mistyped_host_are_never_quoted(
    hook: Twin, connect: Callable[..., None], host: str, words: str
) -> None:
    connect(host=host)

    with pytest.raises(ValueError, match="is not an http") as caught:
        hook.get_lead("lead_1")
    assert words in str(caught.value)
    assert "KEY-42" not in str(caught.value)

    ok, message = hook.test_connection()
    assert not ok
    assert "KEY-42" not in message


# -- 16: a body labelled gzip that is not gzip ---------------------------------------------------------


def test_a_body_labelled_gzip_that_is_not_gzip_could_not_be_decoded(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    lead = octanist_server.add_lead()
    connect(max_retries=3)
    octanist_server.inject("mislabelled", count=None)

    with pytest.raises(OctanistResponseError) as caught:
        hook.get_lead(lead["id"])

    assert f"answer to GET /leads/{lead['id']} (HTTP 200) could not be decoded: it is labelled 'gzip'" in str(
        caught.value
    )
    assert "cut off" not in str(caught.value)
    assert octanist_server.request_count("GET", f"/api/leads/{lead['id']}") == 1, "not asked for again"


# -- 17: time filters in milliseconds ----------------------------------------------------------------


def _at(millisecond: int, microsecond: int = 0) -> datetime:
    return datetime(2026, 3, 10, 12, 0, 0, millisecond * 1000 + microsecond, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("bound", "sent", "matched"),
    [
        ("updated_gte", "2026-03-10T12:00:00.124Z", ["at_124"]),
        ("updated_gt", "2026-03-10T12:00:00.123Z", ["at_124"]),
        ("updated_lt", "2026-03-10T12:00:00.124Z", ["at_123"]),
        ("updated_lte", "2026-03-10T12:00:00.123Z", ["at_123"]),
    ],
)
def test_a_finer_time_filter_is_sent_in_milliseconds_keeping_its_meaning(
    hook: Twin, octanist_server: FakeOctanistServer, bound: str, sent: str, matched: list[str]
) -> None:
    octanist_server.strict_dates = True  # answers INVALID_DATE to anything finer than milliseconds
    octanist_server.add_lead(id="at_123", updatedAt=_at(123))
    octanist_server.add_lead(id="at_124", updatedAt=_at(124))

    leads = hook.list_leads(**{bound: _at(123, 456)})

    assert [lead["id"] for lead in leads] == matched
    [request] = octanist_server.requests
    field = f"updatedAt[{bound.rsplit('_', 1)[1]}]"
    assert request.query[field] == [sent]
