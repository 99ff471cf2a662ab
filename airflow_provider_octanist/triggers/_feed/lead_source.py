"""
Where a feed loop gets its lead changes: the async hook plus the error policy that keeps it alive.

Transient errors back off; a rejected key or a broken connection is retried slowly with a fresh hook.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._backoff import backoff_seconds, is_transient
from airflow_provider_octanist._timestamps import whole_millisecond
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistError
from airflow_provider_octanist.triggers._feed.changes import Changes, FeedNotes, fetch_changes
from airflow_provider_octanist.triggers._feed.health import FeedHealth

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime, timedelta

    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._feed.cursor import Cursor

log = logging.getLogger(__name__)


SLOW_RETRY_SECONDS = 300.0
"""A revoked key or a broken connection is retried no faster than this (or the poll interval)."""


class LeadSource:
    """
    The async hook of one poll loop and its error policy.

    Transient API errors (5xx, 429, timeouts, garbled answers; the hook has already retried them)
    pause the loop with capped exponential backoff (see ``_backoff``). A rejected key (401/403), a
    connection that cannot be read or any other error is logged as a warning and retried no faster
    than every ``max(poll_interval, 5 min)``, with a fresh hook so a fixed connection is picked up.
    The loop itself never ends because of an error; after a few failed polls in a row its
    ``health`` logs at ERROR (once an hour), and every poll publishes metrics (see ``health``).

    :param octanist_conn_id: the Airflow connection to read leads with.
    :param poll_interval: seconds between polls; the base of every backoff.
    :param logger: where to log (the trigger's own logger).
    :param kind: what polls (``event_trigger``, ``shared_poll``, ``status_feed``): names its metrics.
    """

    def __init__(
        self, octanist_conn_id: str, poll_interval: float, logger: Any = None, kind: str = "event_trigger"
    ) -> None:
        self.octanist_conn_id = octanist_conn_id
        self.poll_interval = poll_interval
        self.log = logger if logger is not None else log
        self.health = FeedHealth(kind, octanist_conn_id, self.log)
        self._hook: OctanistAsyncHook | None = None
        self._retired: list[OctanistAsyncHook] = []
        self._failures = 0
        # What this feed learnt about the API (an ignored sort, malformed leads): said once, kept.
        self.notes = FeedNotes(self.log, self.health)

    @property
    def hook(self) -> OctanistAsyncHook:
        """The hook of the current attempt (created on first use, replaced after a bad-key error)."""
        if self._hook is None:
            from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

            self._hook = OctanistAsyncHook(self.octanist_conn_id)
        return self._hook

    async def fetch(self, start: Cursor, **filters: Any) -> Changes:
        """:func:`fetch_changes` with this source's hook; a success resets the backoff."""
        changes = await fetch_changes(self.hook, start, notes=self.notes, **filters)
        self._failures = 0
        self.health.progressed()
        return changes

    async def server_now(self) -> datetime:
        """
        The server's clock (``meta.timestamp`` of one small list request), to whole milliseconds.

        A watcher starts by it, as every ``updatedAt`` it compares with is stamped by that clock:
        with the triggerer's own clock, a server minutes behind would hide the first wins and one
        ahead would report wins from before the watcher existed. Without a believable server time
        (none given, or one no time zone explains) the feed's last believed reading carried forward,
        or this machine's clock, is used, and said at ERROR.
        """
        # Only meta.timestamp counts here: a malformed lead on the page must not stop the start.
        page = await self.hook.list_leads_page(1, skip_malformed=True, page_size=1)
        now = self.notes.server_time(page.server_time)
        if now is None:
            if page.server_time is None:
                self.notes.say(
                    "no server clock",
                    "Octanist's answer carried no server time (meta.timestamp); the lead watcher starts "
                    "at this machine's clock instead, and a server clock far from it hides or repeats "
                    "the first changes.",
                    error=True,
                )
            now = self.notes.clock.now()
        return whole_millisecond(now)

    async def seed(
        self, statuses: Sequence[str], start: datetime, remember_for: timedelta
    ) -> dict[str, tuple[str, datetime]]:
        """A watcher's start-up memory, read through this source: see ``triggers._watch.start.seed``."""
        from airflow_provider_octanist.triggers._watch.start import seed

        return await seed(self, statuses, start, remember_for)

    def pause_after(self, exc: BaseException, doing: str) -> float:
        """Log a failed attempt to do ``doing`` and return the seconds to wait before the next one."""
        self._failures += 1
        self.health.failed(exc)
        slow = max(self.poll_interval, SLOW_RETRY_SECONDS)
        if is_transient(exc) or _is_airflow_runtime_error(exc):
            wait = backoff_seconds(self._failures, self.poll_interval, slow)
            self.log.warning(
                "Octanist lead watcher (connection %r) could not %s: %s. Attempt %d failed; next in %.1f s.",
                self.octanist_conn_id,
                doing,
                exc,
                self._failures,
                wait,
            )
            return wait
        self._retire_hook()
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
        return slow

    async def pause(self, exc: BaseException, doing: str) -> None:
        """Log a failed attempt to do ``doing`` and wait as :meth:`pause_after` decides."""
        await sleep(self.pause_after(exc, doing))

    async def until_done(self, attempt: Callable[[], Any], doing: str) -> Any:
        """Await ``attempt()`` until it succeeds, pausing after each failure."""
        while True:
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self.pause(exc, doing)

    def _retire_hook(self) -> None:
        # The hook caches the connection; the next attempt reads it again (a rotated key, a fixed host).
        if self._hook is not None:
            self._retired.append(self._hook)
            self._hook = None

    async def aclose(self) -> None:
        """Close every hook this source opened."""
        hooks = [*self._retired, *([self._hook] if self._hook is not None else [])]
        self._retired, self._hook = [], None
        for hook in hooks:
            await hook.aclose()


def _is_airflow_runtime_error(exc: BaseException) -> bool:
    # The asset state store answers through the triggerer's supervisor; its failures (API server
    # busy, database briefly away) are AirflowRuntimeError and pass like a flaky network.
    return type(exc).__name__ == "AirflowRuntimeError"


async def sleep(seconds: float) -> None:
    """How every feed loop waits (one place, so tests and benchmarks can record the waits instead)."""
    await asyncio.sleep(seconds)
