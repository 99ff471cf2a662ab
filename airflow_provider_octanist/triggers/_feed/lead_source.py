"""
Where a feed loop gets its lead changes: the async hook, the server's clock, and the waits its error
policy (``retry_policy``) decides, with a fresh hook after a rejected key or a broken connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._timestamps import whole_millisecond
from airflow_provider_octanist.triggers._feed.changes import Changes, FeedNotes, fetch_changes
from airflow_provider_octanist.triggers._feed.health import FeedHealth
from airflow_provider_octanist.triggers._feed.retry_policy import SLOW_RETRY_SECONDS, RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from airflow_provider_octanist._keyset.cursor import Cursor
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

log = logging.getLogger(__name__)


__all__ = ["SLOW_RETRY_SECONDS", "LeadSource", "sleep"]


class LeadSource:
    """
    The async hook of one poll loop, what the loop learnt of the API, and its waits after failures.

    A failed attempt is judged by the loop's ``policy`` (see ``retry_policy``): transient errors
    back off, anything else waits ``max(poll_interval, 5 min)`` and the next attempt gets a fresh
    hook, so a fixed connection is picked up. The loop itself never ends because of an error; after
    a few failed polls in a row its ``health`` logs at ERROR (once an hour), and every poll
    publishes metrics (see ``health``).

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
        self.policy = RetryPolicy(octanist_conn_id, poll_interval, self.health, self.log)
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
        self.policy.succeeded()
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

    def pause_after(self, exc: BaseException, doing: str) -> float:
        """Log a failed attempt to do ``doing`` and return the seconds to wait before the next one."""
        wait, fresh_hook = self.policy.failed(exc, doing)
        if fresh_hook:
            self._retire_hook()
        return wait

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


async def sleep(seconds: float) -> None:
    """How every feed loop waits (one place, so tests and benchmarks can record the waits instead)."""
    await asyncio.sleep(seconds)
