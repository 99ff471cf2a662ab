"""
How a lead-status trigger waits: its own reads of the lead, and following the shared change feed.

``StatusWait`` is the algorithm of ``OctanistLeadStatusTrigger.run`` (which stays, with its
arguments and ``serialize()``, in ``triggers/octanist.py``); it talks to its feed through ``feed``.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

from airflow.triggers.base import TriggerEvent

from airflow_provider_octanist._backoff import backoff_seconds, is_transient
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistNotFoundError
from airflow_provider_octanist.triggers._status import feed
from airflow_provider_octanist.triggers._status.listing import unlisted

if TYPE_CHECKING:
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._status.feed import Seat
    from airflow_provider_octanist.triggers._status.subscription import News
    from airflow_provider_octanist.types import Lead


class Terms(Protocol):
    """What a wait reads of its trigger: the trigger's arguments and its logger."""

    lead_id: str
    target_statuses: tuple[str, ...]
    failure_statuses: tuple[str, ...]
    octanist_conn_id: str
    poll_interval: float
    end_time: float | None
    max_consecutive_errors: int
    max_backoff: float
    shared_feed: bool
    still_waiting_every: float

    @property
    def log(self) -> Any: ...


class Progress:
    """
    What one lead-status trigger knows so far: the lead, its checks and failures in a row.

    A triggerer holds one per waiting sensor, so the lead last read is kept as compact JSON text
    (a few hundred bytes where the parsed dict of a lead with its click ids and UTM fields takes
    several kilobytes) and parsed again only when an event or a log line needs it.
    """

    __slots__ = ("_lead", "checks", "failures", "last_error", "last_status", "next_report", "read_from")

    def __init__(self, still_waiting_every: float) -> None:
        self._lead: bytes | Lead | None = None
        self.last_status: Any = object()
        self.failures = 0
        self.last_error: str | None = None
        self.checks = 0
        self.next_report = time.monotonic() + still_waiting_every
        self.read_from = float("-inf")
        """When (``time.monotonic()``) the last successful read of the lead began."""

    @property
    def lead(self) -> Lead | None:
        """The lead as last read (a fresh dict on each access), or ``None`` before the first read."""
        kept = self._lead
        if isinstance(kept, bytes):
            return cast("Lead", json.loads(kept))
        return kept

    @lead.setter
    def lead(self, lead: Lead | None) -> None:
        try:
            self._lead = None if lead is None else json.dumps(lead, separators=(",", ":")).encode()
        except (TypeError, ValueError):  # not plain JSON (never from the API's answers): kept as it is
            self._lead = lead


class StatusWait:
    """
    One run of a lead-status trigger: read the lead, then follow the feed or poll it alone.

    :param trigger: the trigger that runs (its arguments, its ``still_waiting_every`` and its log).
    :param hook: the trigger's hook, closed by the trigger.
    """

    # A triggerer holds one per waiting sensor: no per-instance dict.
    __slots__ = (
        "end_time",
        "failure_statuses",
        "hook",
        "lead_id",
        "log",
        "max_backoff",
        "max_consecutive_errors",
        "octanist_conn_id",
        "poll_interval",
        "still_waiting_every",
        "target_statuses",
        "trigger",
    )

    def __init__(self, trigger: Terms, hook: OctanistAsyncHook) -> None:
        self.trigger = trigger
        self.hook = hook
        self.lead_id = trigger.lead_id
        self.target_statuses = trigger.target_statuses
        self.failure_statuses = trigger.failure_statuses
        self.octanist_conn_id = trigger.octanist_conn_id
        self.poll_interval = trigger.poll_interval
        self.end_time = trigger.end_time
        self.max_consecutive_errors = trigger.max_consecutive_errors
        self.max_backoff = trigger.max_backoff
        self.still_waiting_every = trigger.still_waiting_every
        self.log = trigger.log

    async def run(self) -> TriggerEvent:
        """Wait until the lead is at a target or failure status, the end time passes, or errors win."""
        if self.trigger.shared_feed:
            return await self._wait_with_feed()
        return await self._poll_until_done(Progress(self.still_waiting_every))

    def _seconds_left(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _timeout_event(self, lead: Lead | None, last_error: str | None) -> TriggerEvent:
        waited_for = " or ".join(self.target_statuses)
        seen = f"; it was last {cap(repr(lead.get('status')), MAX_SERVER_WORD)}" if lead is not None else ""
        error = f"; the last check failed: {last_error}" if last_error else ""
        payload: dict[str, Any] = {
            "status": "timeout",
            "lead_id": self.lead_id,
            "message": (
                f"Lead {self.lead_id} did not become {waited_for} before the sensor's timeout{seen}{error}."
            ),
        }
        if lead is not None:
            payload["lead"] = lead
        return TriggerEvent(payload)

    def _error_event(self, message: str) -> TriggerEvent:
        return TriggerEvent({"status": "error", "lead_id": self.lead_id, "message": message})

    # -- one check of the lead ---------------------------------------------------------------------

    async def _check(self, progress: Progress) -> tuple[TriggerEvent | None, str | None]:
        """
        Read the lead once; return the event it ends with, if any, and the server's time of the answer.

        A transient failure counts against ``max_consecutive_errors`` and returns no event until
        that many failed in a row.
        """
        progress.checks += 1
        progress.last_error = None
        began = time.monotonic()
        try:
            # The end time bounds the request too, so a slow answer cannot hold the trigger past it.
            lead, server_time = await self.hook.get_lead_with_server_time(
                self.lead_id, deadline=self.end_time
            )
        except OctanistNotFoundError as exc:
            return (
                TriggerEvent(
                    {
                        "status": "not_found",
                        "lead_id": self.lead_id,
                        "message": f"Octanist has no lead {self.lead_id!r}: {exc}",
                    }
                ),
                None,
            )
        except Exception as exc:
            if not is_transient(exc):
                # A rejected key, a refused request or a broken connection setting: polling
                # again cannot help, so report it now with Octanist's words.
                self.log.error("Watching lead %s failed: %s", self.lead_id, exc)
                return self._error_event(f"Watching lead {self.lead_id} failed: {exc}"), None
            return self._failed(progress, progress.failures + 1, exc), None
        progress.failures = 0
        progress.read_from = began
        return self._judge(lead, progress), server_time

    def _failed(self, progress: Progress, failures: int, exc: BaseException | str) -> TriggerEvent | None:
        """
        Count ``failures`` checks in a row that failed with transient errors, the last with ``exc``.

        The error event once there are ``max_consecutive_errors`` of them, else a warning line.
        """
        progress.failures = failures
        progress.last_error = str(exc)
        if failures >= self.max_consecutive_errors:
            self.log.error("Giving up on lead %s after %d failed checks in a row.", self.lead_id, failures)
            return self._error_event(
                f"Gave up watching lead {self.lead_id} after {failures} failed checks in a row; "
                f"the last one: {exc}"
            )
        self.log.warning(
            "Checking lead %s failed (%d of %d in a row): %s",
            self.lead_id,
            failures,
            self.max_consecutive_errors,
            exc,
        )
        return None

    def _judge(self, lead: Lead, progress: Progress) -> TriggerEvent | None:
        """The event a lead in this state ends the wait with, if any; log a status change."""
        progress.lead = lead
        status = lead.get("status")
        if status in self.target_statuses:
            self.log.info("Lead %s is %s.", self.lead_id, status)
            return TriggerEvent({"status": "success", "lead_id": self.lead_id, "lead": lead})
        if status in self.failure_statuses:
            self.log.info("Lead %s is %s, a failure status.", self.lead_id, status)
            return TriggerEvent({"status": "failure", "lead_id": self.lead_id, "lead": lead})
        if status != progress.last_status:
            self.log.info(
                "Lead %s is %s; waiting until it is %s.",
                self.lead_id,
                cap(str(status), MAX_SERVER_WORD),
                " or ".join(self.target_statuses),
            )
            progress.last_status = status
        return None

    def _report_if_due(self, progress: Progress, checks: int) -> None:
        """Log a short "still waiting" line every ``still_waiting_every`` seconds."""
        now = time.monotonic()
        if now < progress.next_report:
            return
        progress.next_report = now + self.still_waiting_every
        left = self._seconds_left()
        status = progress.lead.get("status") if progress.lead is not None else "unread"
        self.log.info(
            "Still waiting for lead %s to become %s: it is %s after %d check(s); %s.",
            self.lead_id,
            " or ".join(self.target_statuses),
            cap(str(status), MAX_SERVER_WORD),
            checks,
            "no end time" if left is None else f"{max(0.0, left):.0f} s left",
        )

    # -- polling the lead on its own -----------------------------------------------------------------

    async def _poll_until_done(self, progress: Progress, first_wait: float | None = None) -> TriggerEvent:
        wait = first_wait
        while True:
            if wait is not None:
                left = self._seconds_left()
                if left is not None:
                    if left <= 0:
                        return self._timeout_event(progress.lead, progress.last_error)
                    # Sleep no further than the end time, so the last check happens right at it.
                    wait = min(wait, left)
                await asyncio.sleep(wait)
            event, _ = await self._check(progress)
            if event is not None:
                return event
            self._report_if_due(progress, progress.checks)
            if progress.failures:
                wait = backoff_seconds(progress.failures, self.poll_interval, self.max_backoff)
            else:
                wait = self.poll_interval
            left = self._seconds_left()
            if left is not None and left <= 0:
                return self._timeout_event(progress.lead, progress.last_error)

    # -- waiting with the shared change feed -------------------------------------------------------

    async def _wait_with_feed(self) -> TriggerEvent:
        progress = Progress(self.still_waiting_every)
        read = await self._first_read(progress)
        if isinstance(read, TriggerEvent):
            return read
        lead = cast("dict[str, Any]", progress.lead)
        placed = feed.place(lead, read)
        # Why the feed cannot serve this trigger, if it cannot; each reason is checked only if needed.
        why = (
            placed
            if isinstance(placed, str)
            else feed.refused(self.octanist_conn_id, self.poll_interval) or await self._unlisted(progress)
        )
        if isinstance(why, TriggerEvent):
            return why
        if why is not None or isinstance(placed, str):
            return await self._fall_back(progress, why or "")
        seat = feed.join(
            self.octanist_conn_id,
            self.poll_interval,
            self.lead_id,
            lead,
            placed,
            read_from=progress.read_from,
            max_backoff=self.max_backoff,
            logger=self.log,
        )
        try:
            event = await self._follow(seat, progress)
        finally:
            await seat.leave()
        if event is not None:
            return event
        return await self._fall_back(progress, seat.fallback or "")

    async def _unlisted(self, progress: Progress) -> TriggerEvent | str | None:
        """
        Why the feed would never show this trigger's lead, or ``None`` when the list shows it.

        A lead missing from the listing of its ``updatedAt`` may just have changed since it was
        read: it is read again (which ends the wait if it got there) and looked for anew, up to
        three times, before it counts as hidden from the list.
        """
        for _ in range(3):
            seen = progress.lead
            try:
                lead = cast("dict[str, Any]", seen)
                reason = await unlisted(self.hook, lead, self.poll_interval, self.end_time)
            except OctanistAuthError as exc:
                self.log.error("Watching lead %s failed: %s", self.lead_id, exc)
                return self._error_event(f"Watching lead {self.lead_id} failed: {exc}")
            if reason is None or feed.refused(self.octanist_conn_id, self.poll_interval):
                return reason  # listed, or the API refused the listing: no second look helps
            event, _ = await self._check(progress)
            if event is not None:
                return event
            now = progress.lead
            if now is None or now.get("updatedAt") == (seen or {}).get("updatedAt"):
                return reason  # the lead has not changed: the list hides it
        return reason

    async def _first_read(self, progress: Progress) -> TriggerEvent | str | None:
        """
        Read the lead until a read succeeds: the event that ends the wait, or the server's time of the answer.

        It answers at once for a lead already in a target or failure status, and its server time
        tells the feed where to start.
        """
        while True:
            event, server_time = await self._check(progress)
            if event is not None:
                return event
            left = self._seconds_left()
            if left is not None and left <= 0:
                return self._timeout_event(progress.lead, progress.last_error)
            if progress.failures == 0:
                return server_time
            wait = backoff_seconds(progress.failures, self.poll_interval, self.max_backoff)
            await asyncio.sleep(wait if left is None else min(wait, left))

    async def _follow(self, seat: Seat, progress: Progress) -> TriggerEvent | None:
        """Wait on the feed until it ends the wait; ``None`` when the feed cannot serve this trigger."""
        reported_failures = 0
        timeout: float | None = None  # the first news is what the feed said while the trigger joined
        while True:
            news = await seat.next_news(timeout)
            event, news = await self._news(seat, news, progress)
            if event is not None:
                return event
            if news.fatal is not None:
                exc = news.fatal
                self.log.error("Watching lead %s failed: %s", self.lead_id, exc)
                return self._error_event(f"Watching lead {self.lead_id} failed: {exc}")
            if news.fallback is not None:
                return None
            if news.failures != reported_failures:
                reported_failures = news.failures
                if reported_failures:
                    event = self._failed(progress, reported_failures, news.last_error or "unknown error")
                    if event is not None:
                        return event
                else:
                    progress.failures = 0
            self._report_if_due(progress, progress.checks + news.polls)
            left = self._seconds_left()
            if left is not None and left <= 0:
                # The last check happens right at the end time, as when polling alone.
                event, _ = await self._check(progress)
                return event or self._timeout_event(progress.lead, progress.last_error)
            timeout = max(0.0, progress.next_report - time.monotonic())
            if left is not None:
                timeout = min(timeout, left)

    async def _news(self, seat: Seat, news: News, progress: Progress) -> tuple[TriggerEvent | None, News]:
        """
        Judge what the feed handed over: a newer row of the lead, or a request to read it once.

        Returns the event that ends the wait, if any, and what the feed says after a read it asked for.
        """
        if news.lead is not None:
            event = self._judge(cast("Lead", news.lead), progress)
            if event is not None:
                return event, news
        if news.check:
            # The feed's count of leads changed: this lead may be the one deleted. A lone
            # trigger's read: 404 fires not_found; a lead still there goes back to waiting.
            # Taken out of the subscription first, so an ask that comes during the read is not lost.
            event, _ = await self._check(progress)
            return event, seat.checked(ok=progress.failures == 0)
        return None, news

    async def _fall_back(self, progress: Progress, reason: str) -> TriggerEvent:
        self.log.warning(
            "Lead %s: the shared change feed cannot serve this trigger (%s); polling GET /leads/%s "
            "every %g s instead.",
            self.lead_id,
            reason,
            self.lead_id,
            self.poll_interval,
        )
        return await self._poll_until_done(progress, first_wait=self.poll_interval)
