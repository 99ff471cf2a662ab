"""
The shared error policy of the hooks' callers and the triggers: which errors are transient, and
how long to wait after failures in a row.
"""

from __future__ import annotations

from airflow_provider_octanist._backoff import backoff_seconds, is_transient


def test_transient_error_classification() -> None:
    from airflow_provider_octanist import exceptions as e

    for transient in (
        e.OctanistServerError,
        e.OctanistRateLimitError,
        e.OctanistConnectionError,
        e.OctanistTimeoutError,
        e.OctanistResponseError,
    ):
        assert is_transient(transient("x"))
    for final in (e.OctanistAuthError, e.OctanistNotFoundError, e.OctanistValidationError):
        assert not is_transient(final("x"))
    assert not is_transient(ValueError("bad id"))


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for failures, ceiling in ((1, 10), (2, 20), (3, 40), (4, 50), (10, 50)):
        waits = [backoff_seconds(failures, 10, 50) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (failures, min(waits), max(waits))
