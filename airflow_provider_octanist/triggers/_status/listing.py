"""
Whether ``GET /leads`` shows a joining trigger's lead: the listing of its millisecond, shared.

Triggers whose leads share a millisecond of ``updatedAt`` share one listing of it for a poll
interval; a listing nobody waits for any more is cancelled.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._backoff import is_transient
from airflow_provider_octanist._keyset.walk import RepeatingPagesError
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap
from airflow_provider_octanist._timestamps import parse_timestamp, whole_millisecond
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistError
from airflow_provider_octanist.triggers._feed.changes import FeedNotes, ids_in_millisecond
from airflow_provider_octanist.triggers._status.refusals import remember_refusal

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_octanist._keyset.cursor import RawLead
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook


async def unlisted(
    hook: OctanistAsyncHook, lead: RawLead, poll_interval: float, deadline: float | None = None
) -> str | None:
    """
    Why ``GET /leads`` does not show ``lead`` (as ``GET /leads/{id}`` returned it); ``None`` when it does.

    The feed sees a lead only through listings by ``updatedAt``, so this lists the millisecond of
    the lead's own ``updatedAt`` (one request, more only when that millisecond holds over 100
    leads). A lead that changed since it was read is missing too: the caller reads it again before
    it concludes. A transient failure is no answer (``None``): the feed's own polls report those.
    A refused listing (a 4xx) is an answer for every trigger of the connection and poll interval
    (see ``feed.refused``); a rejected key is raised. ``deadline`` (``time.time()`` seconds) bounds
    the wait, as the trigger's end time bounds its own reads.

    Triggers whose leads share a millisecond (a bulk update, an import) share one listing of it,
    for a poll interval: a thousand sensors restarted on leads of one bulk update read its pages
    once, not a thousand times each (which, besides the requests, held that many pages in memory).
    """
    at = parse_timestamp(lead.get("updatedAt"))
    if at is None:
        return "the lead has no readable updatedAt"
    listing = Listing.of(hook, whole_millisecond(at), poll_interval)
    listing.waiters += 1
    try:
        if deadline is None:
            shown = await asyncio.shield(listing.task)
        else:
            from airflow_provider_octanist._deadline import within

            shown = await within(max(0.0, deadline - time.time()), asyncio.shield(listing.task))
    except asyncio.TimeoutError:
        return None
    finally:
        listing.left()
    if shown is None or isinstance(shown, str):
        return shown
    if lead.get("id") in shown:
        return None
    return (
        f"GET /leads does not show the lead: it is missing from the listing of its own "
        f"updatedAt {cap(str(lead.get('updatedAt')), MAX_SERVER_WORD)}"
    )


class Listing:
    """
    The listing of one millisecond of ``updatedAt`` that triggers of one event loop and connection share.

    It runs while a trigger waits for it and is cancelled when the last one leaves (a sensor that
    timed out or was cancelled): no request goes out for a trigger that is gone. Its answer serves
    triggers that ask within a poll interval of its start.
    """

    __slots__ = ("began", "task", "waiters")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.began = time.monotonic()
        self.waiters = 0

    @classmethod
    def of(cls, hook: OctanistAsyncHook, start: datetime, poll_interval: float) -> Listing:
        """The listing of the millisecond ``start`` under way or done within ``poll_interval``, else new."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        for key in [k for k, known in _LISTINGS.items() if known.expired(now, poll_interval)]:
            del _LISTINGS[key]
        key = (loop, hook.octanist_conn_id, start)
        known = _LISTINGS.get(key)
        if known is None:
            known = _LISTINGS[key] = cls(loop.create_task(_list_millisecond(hook, start, poll_interval)))
        return known

    def left(self) -> None:
        """One trigger stopped waiting; the last one to go cancels a listing still under way."""
        self.waiters -= 1
        if self.waiters <= 0 and not self.task.done():
            self.task.cancel()

    def expired(self, now: float, poll_interval: float) -> bool:
        task = self.task
        if task.get_loop().is_closed():
            return True
        if not task.done():
            return False
        # A failure is nobody's answer for long: the next trigger lists again.
        failed = task.cancelled() or task.exception() is not None or task.result() is None
        return failed or now - self.began > poll_interval


async def _list_millisecond(hook: OctanistAsyncHook, start: datetime, poll_interval: float) -> Any:
    """
    The ids ``GET /leads`` lists in the millisecond ``start``, a refusal's reason, or ``None`` (failed).

    Read as the change feed reads one instant (``changes.ids_in_millisecond``: pages that repeat
    stop it, and so does a cap on pages). With a hook of its own, closed when the listing ends: the
    trigger that started it may be gone by then, its hook closed, while other triggers still wait.
    """
    async with type(hook)(octanist_conn_id=hook.octanist_conn_id) as lister:
        try:
            notes = _LISTING_NOTES.setdefault(hook.octanist_conn_id, FeedNotes())
            return await ids_in_millisecond(lister, start, notes)
        except OctanistAuthError:
            raise
        except OctanistError as exc:
            if is_transient(exc) and not isinstance(exc, RepeatingPagesError):
                return None
            reason = f"GET /leads with an updatedAt filter and sort was refused: {exc}"
            remember_refusal((asyncio.get_running_loop(), hook.octanist_conn_id, poll_interval), reason)
            return reason


_LISTINGS: dict[tuple[asyncio.AbstractEventLoop, str, datetime], Listing] = {}
"""The listing of one millisecond of ``updatedAt`` per event loop and connection."""

_LISTING_NOTES: dict[str, FeedNotes] = {}
"""What the millisecond listings of each connection learnt about the API (said once, not per listing)."""
