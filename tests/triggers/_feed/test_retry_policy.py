"""
A feed loop's error policy, directly: what each failure costs in waiting, whether the next attempt
gets a fresh hook, and the warning it logs. Each row: the error, failures before it, poll interval;
then the longest wait, the shortest, whether the hook is dropped, and what the warning says.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistConnectionError,
    OctanistNotFoundError,
    OctanistServerError,
)
from airflow_provider_octanist.triggers._feed.health import FeedHealth
from airflow_provider_octanist.triggers._feed.retry_policy import SLOW_RETRY_SECONDS, RetryPolicy


class AirflowRuntimeError(Exception):
    """Named as the asset state store's errors are (the policy knows them by name)."""


POLICY: list[tuple[str, BaseException, int, float, float, float, bool, str]] = [
    (
        "a server error backs off from the poll interval",
        OctanistServerError("boom"),
        0,
        10,
        5,
        10,
        False,
        "Attempt 1 failed",
    ),
    (
        "the third one in a row waits four times longer",
        OctanistServerError("boom"),
        2,
        10,
        20,
        40,
        False,
        "Attempt 3 failed",
    ),
    (
        "backing off stops at the slow retry",
        OctanistConnectionError("down"),
        30,
        10,
        SLOW_RETRY_SECONDS / 2,
        SLOW_RETRY_SECONDS,
        False,
        "Attempt 31 failed",
    ),
    (
        "the asset state store busy backs off like the network",
        AirflowRuntimeError("busy"),
        0,
        10,
        5,
        10,
        False,
        "Attempt 1 failed",
    ),
    (
        "a rejected key waits slowly for a fresh hook",
        OctanistAuthError("Rejected."),
        0,
        10,
        SLOW_RETRY_SECONDS,
        SLOW_RETRY_SECONDS,
        True,
        "has a valid API key",
    ),
    (
        "anything else waits slowly for a fresh hook",
        OctanistNotFoundError("gone"),
        0,
        10,
        SLOW_RETRY_SECONDS,
        SLOW_RETRY_SECONDS,
        True,
        "OctanistNotFoundError: gone",
    ),
    (
        "a poll interval longer than the slow retry is the slow retry",
        OctanistAuthError("Rejected."),
        0,
        900,
        900,
        900,
        True,
        "every 900 s",
    ),
]


@pytest.mark.parametrize(
    ("exc", "before", "poll_interval", "shortest", "longest", "fresh_hook", "says"),
    [row[1:] for row in POLICY],
    ids=[row[0] for row in POLICY],
)
def test_a_failure_costs_a_wait_the_policy_states_and_one_warning(
    exc: BaseException,
    before: int,
    poll_interval: float,
    shortest: float,
    longest: float,
    fresh_hook: bool,
    says: str,
    counted: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test.retry_policy")
    policy = RetryPolicy("crm", poll_interval, FeedHealth("event_trigger", "crm", log), log)
    policy.failures = before
    with caplog.at_level(logging.WARNING, logger="test.retry_policy"):
        wait, fresh = policy.failed(exc, "list lead changes")
    assert shortest <= wait <= longest
    assert fresh is fresh_hook
    (warning,) = caplog.messages
    assert "could not list lead changes" in warning
    assert says in warning
    assert counted["octanist.event_trigger.errors"] == 1


def test_a_success_starts_the_backoff_again() -> None:
    log = logging.getLogger("test.retry_policy")
    policy = RetryPolicy("crm", 10, FeedHealth("event_trigger", "crm", log), log)
    policy.failures = 5
    policy.succeeded()
    wait, _ = policy.failed(OctanistServerError("boom"), "list lead changes")
    assert 5 <= wait <= 10
