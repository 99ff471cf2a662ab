"""
Which failures heal by themselves, and how long to wait before trying again.

The one definition of "transient" and the one backoff, shared by the hooks' retries, the status
trigger and the lead change feed. Cheap to import: DAG files import the triggers.
"""

from __future__ import annotations

import random

from airflow_provider_octanist.exceptions import (
    OctanistConnectionError,
    OctanistError,
    OctanistRateLimitError,
    OctanistResponseError,
    OctanistServerError,
)

__all__ = ["TRANSIENT_ERRORS", "TRANSIENT_STATUS", "backoff_seconds", "is_transient"]

TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
"""HTTP statuses worth asking again: rate limited, or a server that may recover."""

TRANSIENT_ERRORS: tuple[type[OctanistError], ...] = (
    OctanistServerError,
    OctanistRateLimitError,
    OctanistConnectionError,  # includes OctanistTimeoutError
    OctanistResponseError,
)
"""The errors of a call that may pass if it is made again later (what :data:`TRANSIENT_STATUS` becomes)."""


def is_transient(exc: BaseException) -> bool:
    """
    Whether ``exc`` may pass if the call is made again later.

    5xx, 429, connection failures, timeouts and unreadable bodies may pass; a rejected key, a
    missing lead or an invalid request never will.

    :param exc: what a hook raised.
    """
    return isinstance(exc, TRANSIENT_ERRORS)


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """
    Seconds to wait before try number ``attempt + 1``: doubling from ``base``, capped, jittered.

    The ceiling is ``min(cap, base * 2 ** (attempt - 1))`` and the wait is drawn uniformly from
    ``[ceiling / 2, ceiling]`` ("equal jitter"): never shorter than half the ceiling, so a failing
    service still gets the breathing room of exponential backoff, yet clients that failed together
    do not all come back at the same moment.

    :param attempt: failed attempts so far (1 after the first).
    :param base: the ceiling after the first failure.
    :param cap: the longest wait.
    """
    ceiling = min(cap, base * 2 ** min(max(0, attempt - 1), 60))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
