"""
What a feed loop does after a failed attempt: how long it waits, whether it starts again with a
fresh hook, and the warning that says so (transient errors back off; the rest is retried slowly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._backoff import backoff_seconds, is_transient
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistError

if TYPE_CHECKING:
    from airflow_provider_octanist.triggers._feed.health import FeedHealth


SLOW_RETRY_SECONDS = 300.0
"""A revoked key or a broken connection is retried no faster than this (or the poll interval)."""


class RetryPolicy:
    """
    The error policy of one poll loop: failures in a row, and what each failure costs.

    Transient API errors (5xx, 429, timeouts, garbled answers; the hook has already retried them)
    and the asset state store's ``AirflowRuntimeError`` back off exponentially (see ``_backoff``). A
    rejected key (401/403), a connection that cannot be read or any other error waits
    ``max(poll_interval, SLOW_RETRY_SECONDS)`` and asks for a fresh hook, so a fixed connection is
    picked up. Every failure is logged as a warning and told to ``health``.

    :param octanist_conn_id: the connection the loop reads with (named in the warnings).
    :param poll_interval: seconds between polls; the base of every backoff.
    :param health: the loop's health, told of every failure.
    :param logger: where to log.
    """

    def __init__(self, octanist_conn_id: str, poll_interval: float, health: FeedHealth, logger: Any) -> None:
        self.octanist_conn_id = octanist_conn_id
        self.poll_interval = poll_interval
        self.health = health
        self.log = logger
        self.failures = 0

    def succeeded(self) -> None:
        """An attempt succeeded: the next failure backs off from the start."""
        self.failures = 0

    def failed(self, exc: BaseException, doing: str) -> tuple[float, bool]:
        """Log a failed attempt to do ``doing``; return the seconds to wait and whether to drop the hook."""
        self.failures += 1
        self.health.failed(exc)
        slow = max(self.poll_interval, SLOW_RETRY_SECONDS)
        if is_transient(exc) or _is_airflow_runtime_error(exc):
            wait = backoff_seconds(self.failures, self.poll_interval, slow)
            self.log.warning(
                "Octanist lead watcher (connection %r) could not %s: %s. Attempt %d failed; next in %.1f s.",
                self.octanist_conn_id,
                doing,
                exc,
                self.failures,
                wait,
            )
            return wait, False
        # WARNING each time; the health check says it at ERROR once the watcher is blind for real.
        if isinstance(exc, OctanistAuthError):
            self.log.warning(
                "Octanist lead watcher could not %s: %s No lead changes are seen until connection %r "
                "has a valid API key; trying again every %.0f s.",
                doing,
                exc,
                self.octanist_conn_id,
                slow,
            )
        else:
            self.log.warning(
                "Octanist lead watcher (connection %r) could not %s: %s: %s. Trying again every %.0f s.",
                self.octanist_conn_id,
                doing,
                type(exc).__name__,
                exc,
                slow,
                exc_info=not isinstance(exc, (OctanistError, ValueError)),
            )
        return slow, True


def _is_airflow_runtime_error(exc: BaseException) -> bool:
    # The asset state store answers through the triggerer's supervisor; its failures (API server
    # busy, database briefly away) are AirflowRuntimeError and pass like a flaky network.
    return type(exc).__name__ == "AirflowRuntimeError"
