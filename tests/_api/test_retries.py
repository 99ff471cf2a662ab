"""
The retry policy of one call: Retry-After, the backoff, which statuses are retried, how many
times, and the errors once it gives up.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from _api.conftest import CREATE, LIST, LOG, SETTINGS
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._api.retries import MIN_ATTEMPT
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistConnectionError,
    OctanistNotFoundError,
    OctanistRateLimitError,
    OctanistServerError,
    OctanistTimeoutError,
)

# -- Retry-After and backoff -------------------------------------------------------------------

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Tue, 10 Mar 2026 12:00:30 GMT", 30.0),
        ("Tue, 10 Mar 2026 11:59:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(value: str, expected: float | None) -> None:
    assert api.retry_after_seconds({"Retry-After": value}, now=NOW) == expected


def test_retry_after_missing_is_none() -> None:
    assert api.retry_after_seconds({}) is None


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 8])
def test_backoff_doubles_with_jitter_and_is_capped(attempt: int) -> None:
    settings = replace(SETTINGS, backoff=0.5, max_retry_wait=20.0)
    ceiling = min(20.0, 0.5 * 2 ** (attempt - 1))

    waits = {api.retry_wait(attempt, settings) for _ in range(200)}

    assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
    assert len(waits) > 1, "the waits are jittered"


def test_backoff_never_undercuts_retry_after_and_caps_it() -> None:
    assert api.retry_wait(1, SETTINGS, retry_after=7) == 7
    assert api.retry_wait(1, SETTINGS, retry_after=10_000) == api.MAX_RETRY_WAIT
    assert 0.5 <= api.retry_wait(1, SETTINGS, retry_after=0) <= 1.0


@pytest.mark.parametrize(
    ("call", "status", "retried"),
    [
        (LIST, 429, True),
        (LIST, 500, True),
        (LIST, 503, True),
        (LIST, 501, False),
        (LIST, 400, False),
        (LIST, 401, False),
        (LIST, 403, False),
        (LIST, 404, False),
        (LIST, 409, False),
        (CREATE, 429, True),  # refused before any work
        (CREATE, 500, False),  # may have been processed
        (CREATE, 503, False),
    ],
)
def test_which_statuses_are_retried(call: api.Call, status: int, retried: bool) -> None:
    assert api.may_retry_status(call, status) is retried


def test_attempts_allow_max_retries_then_give_up() -> None:
    attempts = api.Attempts(LIST, replace(SETTINGS, max_retries=2), LOG)

    assert attempts.after_status(503, {}) is not None
    assert attempts.after_failure("reset", may_have_reached_server=True) is not None
    assert attempts.after_status(503, {}) is None
    assert attempts.retries == 2


def test_attempts_never_replay_a_create_that_may_have_reached_the_server() -> None:
    attempts = api.Attempts(CREATE, SETTINGS, LOG)

    assert attempts.after_failure("refused", may_have_reached_server=False) is not None
    assert attempts.after_failure("reset", may_have_reached_server=True) is None

    error = attempts.failure("reset", timeout=True, may_have_reached_server=True)
    assert isinstance(error, OctanistTimeoutError)
    assert error.may_have_reached_server is True
    assert error.message == "No answer from Octanist for POST /leads after 2 attempt(s): reset"


def test_attempts_log_each_retry(caplog: pytest.LogCaptureFixture) -> None:
    attempts = api.Attempts(LIST, SETTINGS, LOG)

    with caplog.at_level(logging.WARNING, logger="tests.api"):
        attempts.after_status(503, {"X-Request-Id": "req_9"})

    [record] = caplog.records
    assert re.fullmatch(
        r"Octanist GET /leads: HTTP 503 \(request req_9\); retry 1 of 3 in \d\.\d s\.", record.getMessage()
    )


def test_a_connection_failure_error_names_the_base_url() -> None:
    error = api.Attempts(LIST, SETTINGS, LOG).failure("refused", timeout=False, may_have_reached_server=False)

    assert type(error) is OctanistConnectionError
    assert "Check the connection's base URL (https://octanist.com/api)" in str(error)


# -- the attempts of one call: the wait, or the error to give up with -------------------------------

FAR = 1_000.0
"""Seconds to a deadline that no retry comes near."""
CLOSE = 0.5
"""Seconds to a deadline too close for another attempt (one needs ``MIN_ATTEMPT``)."""


@pytest.mark.parametrize(
    ("call", "retries_done", "status", "left", "outcome"),
    [
        (LIST, 0, 503, None, "wait"),
        (LIST, 0, 503, FAR, "wait"),
        (LIST, 0, 503, CLOSE, OctanistServerError),
        (LIST, 3, 503, None, OctanistServerError),
        (LIST, 0, 429, None, "wait"),
        (LIST, 3, 429, None, OctanistRateLimitError),
        (CREATE, 0, 429, None, "wait"),
        (CREATE, 0, 503, None, OctanistServerError),
        (LIST, 0, 404, None, OctanistNotFoundError),
        (LIST, 0, 401, None, OctanistAuthError),
    ],
)
def test_after_an_answer_attempts_wait_or_raise_its_error(
    call: api.Call, retries_done: int, status: int, left: float | None, outcome: Any
) -> None:
    attempts = api.Attempts(call, SETTINGS, LOG, deadline=None if left is None else time.time() + left)
    attempts.retries = retries_done

    if outcome == "wait":
        assert 0 <= attempts.wait_after_status(status, {}, b"{}") <= SETTINGS.max_retry_wait
        assert attempts.retries == retries_done + 1
    else:
        with pytest.raises(outcome) as caught:
            attempts.wait_after_status(status, {}, b"{}")
        assert type(caught.value) is outcome


REFUSED = api.Failure("refused", timeout=False, may_have_reached_server=False)
RESET = api.Failure("reset", timeout=False, may_have_reached_server=True)
SLOW = api.Failure("slow", timeout=True, may_have_reached_server=True)


@pytest.mark.parametrize(
    ("call", "retries_done", "failure", "left", "outcome"),
    [
        (LIST, 0, RESET, None, "wait"),
        (LIST, 0, SLOW, FAR, "wait"),
        (LIST, 0, RESET, CLOSE, OctanistConnectionError),
        (LIST, 0, SLOW, CLOSE, OctanistTimeoutError),
        (LIST, 3, REFUSED, None, OctanistConnectionError),
        (CREATE, 0, REFUSED, None, "wait"),
        (CREATE, 0, RESET, None, OctanistConnectionError),
        (CREATE, 0, SLOW, None, OctanistTimeoutError),
    ],
)
def test_after_no_answer_attempts_wait_or_raise_the_failures_error(
    call: api.Call, retries_done: int, failure: api.Failure, left: float | None, outcome: Any
) -> None:
    attempts = api.Attempts(call, SETTINGS, LOG, deadline=None if left is None else time.time() + left)
    attempts.retries = retries_done

    if outcome == "wait":
        assert 0 <= attempts.wait_after_failure(failure) <= SETTINGS.max_retry_wait
    else:
        with pytest.raises(outcome) as caught:
            attempts.wait_after_failure(failure)
        assert type(caught.value) is outcome
        assert f"No answer from Octanist for {call.label} after {attempts.retries + 1} attempt(s): " in str(
            caught.value
        )
        assert caught.value.may_have_reached_server is failure.may_have_reached_server


@pytest.mark.parametrize(
    ("retries_done", "left", "limit"),
    [
        (0, None, SETTINGS.total_timeout),
        (0, FAR, SETTINGS.total_timeout),
        (0, -5.0, MIN_ATTEMPT),
        (1, -5.0, 0.0),
    ],
)
def test_an_attempt_gets_the_total_timeout_cut_to_the_deadline_and_a_first_one_a_last_second(
    retries_done: int, left: float | None, limit: float
) -> None:
    attempts = api.Attempts(LIST, SETTINGS, LOG, deadline=None if left is None else time.time() + left)
    attempts.retries = retries_done

    assert attempts.limit() == limit
