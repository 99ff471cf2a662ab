"""
How a watcher says it is blind, where people look: Airflow metrics on every poll, and one ERROR an
hour while it has made no progress for several polls in a row.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)


STALLED_AFTER_POLLS = 3
"""Polls in a row without progress after which a watcher logs at ERROR."""

SAY_AGAIN_EVERY = 3600.0
"""Seconds between two ERROR lines of one watcher while it makes no progress."""

METRIC_PREFIX = "octanist"
"""Every metric is ``octanist.<kind>.<what>``; see ``docs/event-driven.md``, "Watching the watcher"."""


def stats() -> Any:
    """Airflow's ``Stats`` (StatsD or OpenTelemetry, as the deployment configures it)."""
    # Imported on first use: the triggers module must stay cheap to import for DAG files.
    from airflow.providers.common.compat.sdk import Stats

    return Stats


class FeedHealth:
    """
    The metrics and the loud failure of one poll loop (an event trigger, a shared poll, a status feed).

    Each attempt to poll ends in ``progressed`` or ``failed``. Metrics (tagged with the
    connection id): ``octanist.<kind>.polls`` and ``.errors`` (counters), ``.leads_reported`` (a
    counter, see ``reported``) and ``.seconds_since_progress`` (a gauge, set on every attempt).
    After ``STALLED_AFTER_POLLS`` failed attempts in a row it logs at ERROR what is wrong and
    what to do, again every ``SAY_AGAIN_EVERY`` seconds while it lasts, and once at INFO when
    it recovers.

    :param kind: ``event_trigger``, ``shared_poll`` or ``status_feed``.
    :param octanist_conn_id: the connection polled.
    :param logger: where to log.
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        kind: str,
        octanist_conn_id: str,
        logger: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self.octanist_conn_id = octanist_conn_id
        self.log = logger if logger is not None else log
        self._clock = clock
        self._prefix = f"{METRIC_PREFIX}.{kind}."
        self._tags = {"conn_id": octanist_conn_id}
        self.failures = 0
        """Attempts in a row that made no progress."""
        self.last_progress = clock()
        self._said_at: float | None = None

    def progressed(self) -> None:
        """A poll read every change it was asked for."""
        if self._said_at is not None:
            self.log.info(
                "Octanist lead %s (connection %r) sees lead changes again after %d failed poll(s).",
                self._what(),
                self.octanist_conn_id,
                self.failures,
            )
        self.failures = 0
        self._said_at = None
        self.last_progress = self._clock()
        metrics = stats()
        metrics.incr(self._prefix + "polls", tags=self._tags)
        metrics.gauge(self._prefix + "seconds_since_progress", 0.0, tags=self._tags)

    def failed(self, exc: BaseException) -> None:
        """A poll failed; logs at ERROR once it has failed too often, then once an hour."""
        self.failures += 1
        now = self._clock()
        blind_for = now - self.last_progress
        metrics = stats()
        metrics.incr(self._prefix + "polls", tags=self._tags)
        metrics.incr(self._prefix + "errors", tags=self._tags)
        metrics.gauge(self._prefix + "seconds_since_progress", blind_for, tags=self._tags)
        if self.failures < STALLED_AFTER_POLLS:
            return
        if self._said_at is not None and now - self._said_at < SAY_AGAIN_EVERY:
            return
        self._said_at = now
        self.log.error(
            "Octanist lead %s (connection %r) has seen no lead changes for %.0f s (%d failed polls in a "
            "row); leads won meanwhile are not reported until it recovers. The last failure: %s: %s. "
            "Fix what it names (the connection's key or host, Octanist's status, or report the request "
            "id); the %s.seconds_since_progress metric shows how long this lasts. Said again every "
            "%.0f minutes while it lasts.",
            self._what(),
            self.octanist_conn_id,
            blind_for,
            self.failures,
            type(exc).__name__,
            exc,
            self._prefix.rstrip("."),
            SAY_AGAIN_EVERY / 60,
        )

    def clock_unbelievable(self) -> None:
        """An answer's ``meta.timestamp`` could not be believed as the server's clock (``server_clock``)."""
        stats().incr(self._prefix + "server_clock_unbelievable", tags=self._tags)

    def reported(self, count: int) -> None:
        """``count`` leads were handed on (events, or leads delivered to waiting sensors)."""
        if count:
            stats().incr(self._prefix + "leads_reported", count, tags=self._tags)

    def _what(self) -> str:
        return {"status_feed": "status feed", "shared_poll": "shared poll"}.get(self.kind, "watcher")
