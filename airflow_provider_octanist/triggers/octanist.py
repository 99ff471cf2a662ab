"""
Triggers for Octanist: waiting on one lead (deferrable sensor) and watching for leads that enter a status.

Triggers carry only the connection id and plain values: the API key is fetched from the Airflow
connection inside the triggerer and never serialized.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._backoff import TRANSIENT_ERRORS, backoff_seconds, is_transient
from airflow_provider_octanist._checks import check_conn_id, check_max_consecutive_errors, positive_number
from airflow_provider_octanist._timestamps import cursor_timestamp, to_utc
from airflow_provider_octanist.exceptions import OctanistAuthError, OctanistNotFoundError
from airflow_provider_octanist.statuses import LEAD_STATUSES, LOST, WON, normalize_statuses
from airflow_provider_octanist.triggers._watch.shared_poll_support import ack_streams_supported, shared_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Iterable

    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
    from airflow_provider_octanist.triggers._feed.status_feed import StatusFeed, Subscription
    from airflow_provider_octanist.triggers._watch.shared_poll import SharedLeadPoll
    from airflow_provider_octanist.triggers._watch.start import WatchConfig
    from airflow_provider_octanist.types import Lead

# The names this module has always offered for the shared definitions (see ``_backoff``).
TRANSIENT_OCTANIST_ERRORS = TRANSIENT_ERRORS
is_transient_octanist_error = is_transient
transient_backoff_seconds = backoff_seconds


STILL_WAITING_EVERY = 3600.0
"""Seconds between two "still waiting" lines of a lead-status trigger whose lead does not change."""


class _Progress:
    """
    What one lead-status trigger knows so far: the lead, its checks and failures in a row.

    A triggerer holds one per waiting sensor, so the lead last read is kept as compact JSON text
    (a few hundred bytes where the parsed dict of a lead with its click ids and UTM fields takes
    several kilobytes) and parsed again only when an event or a log line needs it.
    """

    __slots__ = ("_lead", "checks", "failures", "last_error", "last_status", "next_report", "read_from")

    def __init__(self, trigger: OctanistLeadStatusTrigger) -> None:
        self._lead: bytes | Lead | None = None
        self.last_status: Any = object()
        self.failures = 0
        self.last_error: str | None = None
        self.checks = 0
        self.next_report = time.monotonic() + trigger.still_waiting_every
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


class OctanistLeadStatusTrigger(BaseTrigger):  # type: ignore[misc]
    """
    Wait until one Octanist lead's status is a target or a failure status, then fire once.

    The deferrable side of :class:`~airflow_provider_octanist.sensors.octanist.OctanistLeadStatusSensor`.
    It serializes only plain values and the connection id; the API key is read from the connection
    inside the triggerer. Events (``payload["status"]``):

    - ``success`` with ``lead``: the lead reached a target status;
    - ``failure`` with ``lead``: the lead reached a failure status;
    - ``not_found`` with ``message``: Octanist has no such lead;
    - ``timeout`` with ``message`` (and ``lead`` when one was read): ``end_time`` passed first;
    - ``error`` with ``message``: the key was rejected, the request was refused, or
      ``max_consecutive_errors`` polls in a row failed with transient errors.

    It reads the lead once with ``GET /leads/{id}``. Then, with ``shared_feed`` (the default), it
    joins the change feed shared by every status trigger of its connection and poll interval in the
    triggerer: one ``GET /leads`` per interval for all of them, plus a count of leads that notices
    deleted ones, each woken only for its own lead or, when that count changed, to read its lead
    once (see ``triggers/_feed/status_feed.py`` and ``deletions.py``). Where the feed cannot serve
    (the API refuses its filter or sort, the answer carries no server time, the lead no
    ``updatedAt``) or with ``shared_feed=False``, it polls ``GET /leads/{id}`` every
    ``poll_interval`` on its own, and says why once in its log. At the end time it checks the lead
    once more before timing out.
    Every ``STILL_WAITING_EVERY`` seconds (an hour) it logs a "still waiting" line.

    Transient errors (5xx, 429, connection failures, timeouts, unreadable answers; each after the
    hook's own retries) are logged and polled again after a backoff that doubles up to
    ``max_backoff``; a successful poll resets the count. The HTTP client is closed on every exit.

    :param lead_id: the lead to watch.
    :param target_statuses: statuses that end the wait successfully.
    :param failure_statuses: statuses that end it as a failure.
    :param octanist_conn_id: Airflow connection of type ``octanist``.
    :param poll_interval: seconds between polls.
    :param end_time: give up at this moment (seconds since the epoch, UTC); ``None`` never gives up.
    :param max_consecutive_errors: transient failures in a row before firing an ``error`` event.
    :param max_backoff: the longest wait, in seconds, between polls that failed.
    :param shared_feed: share one change feed with the other status triggers of this connection
        and poll interval (default); ``False`` polls this lead on its own.
    """

    still_waiting_every = STILL_WAITING_EVERY

    def __init__(
        self,
        lead_id: str,
        *,
        target_statuses: str | Iterable[str] = (WON,),
        failure_statuses: str | Iterable[str] | None = (LOST,),
        octanist_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        end_time: float | None = None,
        max_consecutive_errors: int = 5,
        max_backoff: float = 600.0,
        shared_feed: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(lead_id, str) or not lead_id.strip():
            raise ValueError(f"lead_id must be a lead id such as 'lead_abc123', got {lead_id!r}.")
        _seconds(poll_interval, "poll_interval")
        _seconds(max_backoff, "max_backoff")
        check_max_consecutive_errors(max_consecutive_errors)
        if end_time is not None and (isinstance(end_time, bool) or not isinstance(end_time, (int, float))):
            raise ValueError(f"end_time must be seconds since the epoch (time.time()), got {end_time!r}.")
        if not isinstance(shared_feed, bool):
            raise ValueError(f"shared_feed must be True or False, got {shared_feed!r}.")
        self.lead_id = lead_id
        self.target_statuses = normalize_statuses(target_statuses)
        self.failure_statuses = normalize_statuses(failure_statuses) if failure_statuses else ()
        self.octanist_conn_id = octanist_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = None if end_time is None else float(end_time)
        self.max_consecutive_errors = max_consecutive_errors
        self.max_backoff = float(max_backoff)
        self.shared_feed = shared_feed

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the plain keyword arguments that rebuild this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "lead_id": self.lead_id,
                "target_statuses": list(self.target_statuses),
                "failure_statuses": list(self.failure_statuses),
                "octanist_conn_id": self.octanist_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_consecutive_errors": self.max_consecutive_errors,
                "max_backoff": self.max_backoff,
                "shared_feed": self.shared_feed,
            },
        )

    def _seconds_left(self) -> float | None:
        return None if self.end_time is None else self.end_time - time.time()

    def _timeout_event(self, lead: Lead | None, last_error: str | None) -> TriggerEvent:
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait until the lead is at a target or failure status, the end time passes, or errors win."""
        from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

        hook = OctanistAsyncHook(octanist_conn_id=self.octanist_conn_id)
        try:
            if self.shared_feed:
                event = await self._wait_with_feed(hook)
            else:
                event = await self._poll_until_done(hook, _Progress(self))
        finally:
            # Closed before the event is yielded: Airflow may never resume the generator afterwards.
            await hook.aclose()
        yield event

    # -- one check of the lead ---------------------------------------------------------------------

    async def _check(
        self, hook: OctanistAsyncHook, progress: _Progress
    ) -> tuple[TriggerEvent | None, str | None]:
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
            lead, server_time = await hook.get_lead_with_server_time(self.lead_id, deadline=self.end_time)
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
            return self._transient_failure(progress, exc), None
        progress.failures = 0
        progress.read_from = began
        return self._judge(lead, progress), server_time

    def _transient_failure(self, progress: _Progress, exc: BaseException | str) -> TriggerEvent | None:
        progress.failures += 1
        progress.last_error = str(exc)
        if progress.failures >= self.max_consecutive_errors:
            self.log.error(
                "Giving up on lead %s after %d failed checks in a row.", self.lead_id, progress.failures
            )
            return self._error_event(
                f"Gave up watching lead {self.lead_id} after {progress.failures} failed checks in a row; "
                f"the last one: {exc}"
            )
        self.log.warning(
            "Checking lead %s failed (%d of %d in a row): %s",
            self.lead_id,
            progress.failures,
            self.max_consecutive_errors,
            exc,
        )
        return None

    def _judge(self, lead: Lead, progress: _Progress) -> TriggerEvent | None:
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
            from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

            self.log.info(
                "Lead %s is %s; waiting until it is %s.",
                self.lead_id,
                cap(str(status), MAX_SERVER_WORD),
                " or ".join(self.target_statuses),
            )
            progress.last_status = status
        return None

    def _report_if_due(self, progress: _Progress, checks: int) -> None:
        """Log a short "still waiting" line every ``still_waiting_every`` seconds."""
        now = time.monotonic()
        if now < progress.next_report:
            return
        progress.next_report = now + self.still_waiting_every
        left = self._seconds_left()
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

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

    async def _poll_until_done(
        self, hook: OctanistAsyncHook, progress: _Progress, first_wait: float | None = None
    ) -> TriggerEvent:
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
            event, _ = await self._check(hook, progress)
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

    async def _wait_with_feed(self, hook: OctanistAsyncHook) -> TriggerEvent:
        from airflow_provider_octanist.triggers._feed import status_feed
        from airflow_provider_octanist.triggers._feed.deletions import created_at

        progress = _Progress(self)
        read = await self._first_read(hook, progress)
        if isinstance(read, TriggerEvent):
            return read
        placed = status_feed.place(cast("dict[str, Any]", progress.lead), read)
        # Why the feed cannot serve this trigger, if it cannot; each reason is checked only if needed.
        why = (
            placed
            if isinstance(placed, str)
            else status_feed.refused(self.octanist_conn_id, self.poll_interval)
            or await self._unlisted(hook, progress)
        )
        if isinstance(why, TriggerEvent):
            return why
        if why is not None or isinstance(placed, str):
            return await self._fall_back(hook, progress, why or "")
        subscription = status_feed.Subscription(
            self.lead_id,
            *placed,
            created_at=created_at(cast("dict[str, Any]", progress.lead)),
            read_from=progress.read_from,
        )
        feed = status_feed.subscribe(
            self.octanist_conn_id, self.poll_interval, subscription, self.max_backoff, self.log
        )
        try:
            event = await self._follow(feed, subscription, hook, progress)
        finally:
            await status_feed.unsubscribe(feed, subscription)
        if event is not None:
            return event
        return await self._fall_back(hook, progress, subscription.fallback or "")

    async def _unlisted(self, hook: OctanistAsyncHook, progress: _Progress) -> TriggerEvent | str | None:
        """
        Why the feed would never show this trigger's lead, or ``None`` when the list shows it.

        A lead missing from the listing of its ``updatedAt`` may just have changed since it was
        read: it is read again (which ends the wait if it got there) and looked for anew, up to
        three times, before it counts as hidden from the list.
        """
        from airflow_provider_octanist.triggers._feed import status_feed

        for _ in range(3):
            seen = progress.lead
            try:
                lead = cast("dict[str, Any]", seen)
                reason = await status_feed.unlisted(hook, lead, self.poll_interval, self.end_time)
            except OctanistAuthError as exc:
                self.log.error("Watching lead %s failed: %s", self.lead_id, exc)
                return self._error_event(f"Watching lead {self.lead_id} failed: {exc}")
            if reason is None or status_feed.refused(self.octanist_conn_id, self.poll_interval):
                return reason  # listed, or the API refused the listing: no second look helps
            event, _ = await self._check(hook, progress)
            if event is not None:
                return event
            now = progress.lead
            if now is None or now.get("updatedAt") == (seen or {}).get("updatedAt"):
                return reason  # the lead has not changed: the list hides it
        return reason

    async def _first_read(self, hook: OctanistAsyncHook, progress: _Progress) -> TriggerEvent | str | None:
        """
        Read the lead until a read succeeds: the event that ends the wait, or the server's time of the answer.

        It answers at once for a lead already in a target or failure status, and its server time
        tells the feed where to start.
        """
        while True:
            event, server_time = await self._check(hook, progress)
            if event is not None:
                return event
            left = self._seconds_left()
            if left is not None and left <= 0:
                return self._timeout_event(progress.lead, progress.last_error)
            if progress.failures == 0:
                return server_time
            wait = backoff_seconds(progress.failures, self.poll_interval, self.max_backoff)
            await asyncio.sleep(wait if left is None else min(wait, left))

    async def _follow(
        self,
        feed: StatusFeed,
        subscription: Subscription,
        hook: OctanistAsyncHook,
        progress: _Progress,
    ) -> TriggerEvent | None:
        """Wait on the feed until it ends the wait; ``None`` when the feed cannot serve this trigger."""
        loop = asyncio.get_running_loop()
        reported_failures = 0
        while True:
            # Cleared before reading what the feed said: whatever it says meanwhile (while the
            # lead is read, say) ends the next wait at once.
            subscription.wake.clear()
            event = await self._news(subscription, hook, progress)
            if event is not None:
                return event
            if subscription.fatal is not None:
                exc = subscription.fatal
                self.log.error("Watching lead %s failed: %s", self.lead_id, exc)
                return self._error_event(f"Watching lead {self.lead_id} failed: {exc}")
            if subscription.fallback is not None:
                return None
            if subscription.failures != reported_failures:
                reported_failures = subscription.failures
                if reported_failures:
                    progress.failures = reported_failures - 1
                    event = self._transient_failure(progress, subscription.last_error or "unknown error")
                    if event is not None:
                        return event
                else:
                    progress.failures = 0
            checks = progress.checks + feed.polls - subscription.polls_at_join
            self._report_if_due(progress, checks)
            left = self._seconds_left()
            if left is not None and left <= 0:
                # The last check happens right at the end time, as when polling alone.
                event, _ = await self._check(hook, progress)
                return event or self._timeout_event(progress.lead, progress.last_error)
            timeout = max(0.0, progress.next_report - time.monotonic())
            if left is not None:
                timeout = min(timeout, left)
            timer = loop.call_later(timeout, subscription.wake.set)
            try:
                await subscription.wake.wait()
            finally:
                timer.cancel()

    async def _news(
        self, subscription: Subscription, hook: OctanistAsyncHook, progress: _Progress
    ) -> TriggerEvent | None:
        """Judge what the feed handed over: a newer row of the lead, or a request to read it once."""
        from airflow_provider_octanist.triggers._feed import status_feed

        if subscription.lead is not None:
            lead = cast("Lead", status_feed.as_lead(subscription.lead))
            subscription.lead = None
            event = self._judge(lead, progress)
            if event is not None:
                return event
        if subscription.check:
            # The feed's count of leads changed: this lead may be the one deleted. A lone
            # trigger's read: 404 fires not_found; a lead still there goes back to waiting.
            # Cleared first, so an ask that comes during the read is not lost.
            subscription.check = False
            event, _ = await self._check(hook, progress)
            subscription.checked(ok=progress.failures == 0)
            return event
        return None

    async def _fall_back(self, hook: OctanistAsyncHook, progress: _Progress, reason: str) -> TriggerEvent:
        self.log.warning(
            "Lead %s: the shared change feed cannot serve this trigger (%s); polling GET /leads/%s "
            "every %g s instead.",
            self.lead_id,
            reason,
            self.lead_id,
            self.poll_interval,
        )
        return await self._poll_until_done(hook, progress, first_wait=self.poll_interval)


DEFAULT_EVENT_POLL_INTERVAL = 60.0
"""Seconds between two polls of a lead event trigger: one list request per minute when nothing changes."""

DEFAULT_REMEMBER_FOR = timedelta(days=90)
"""How long a watcher remembers a lead that is in a watched status: Octanist leads expire after 90 days."""


class OctanistLeadEventTrigger(BaseEventTrigger):  # type: ignore[misc]
    """
    Report every Octanist lead that enters a status (by default ``won``), for Airflow 3 ``AssetWatcher``.

    Use it as an asset's watcher; each poll that finds leads entering a watched status becomes one
    asset event, so DAGs scheduled on the asset run for those leads::

        lead_won = Asset(
            "octanist_lead_won",
            watchers=[AssetWatcher(name="octanist_lead_won", trigger=OctanistLeadEventTrigger())],
        )

    The event payload is plain JSON: ``{"kind": "octanist.leads", "version": 1, "statuses": [...],
    "polled_at": ..., "leads": [lead, ...]}`` where each lead is the lead object as ``GET /leads``
    returned it plus ``previousStatus``. Read it with
    :func:`airflow_provider_octanist.events.leads_from_asset_events`.

    **Entries, not conditions.** A lead is reported when it *enters* a watched status: a lead edited
    while it stays won is not reported again; a lead that leaves and comes back is. Octanist only
    shows a lead's current state, so a lead that leaves and re-enters between two polls looks
    like an edit and is not reported again.

    **Nothing lost, nothing doubled.** Polls page through ``GET /leads?sort=updatedAt:asc`` with a
    keyset watermark (an ``updatedAt`` plus the ids handled at that instant), so changes during
    paging and leads sharing one millisecond are safe. On Airflow 3.3+ the watermark and the
    watcher's memory live in the asset state store and survive triggerer restarts. They are written
    after the event they cover is stored (confirmed by Airflow's shared-stream ack channel on 3.3.2,
    else one poll interval later), so a crash can repeat one poll's leads but never skip any (see
    the README). On Airflow 3.0-3.2 they live in memory: a restarted triggerer starts again at the
    start point.

    **Cost.** One list request per poll when nothing changed, plus about one per 100 changed leads.
    Watchers of the same connection and poll interval share one poll on Airflow 3.3.2+.

    :param statuses: the status(es) to report entries into: ``open``, ``qualified``, ``won``,
        ``lost`` (legacy ``win`` accepted).
    :param octanist_conn_id: Airflow connection of type ``octanist``. Only its id travels with the
        trigger; the API key is read in the triggerer.
    :param poll_interval: seconds between two polls (default 60).
    :param updated_since: the start point: only status entries after this instant are reported (an
        ISO 8601 string, a datetime or a date). Default: the moment the watcher first runs, i.e. only
        future changes. A watcher's state belongs to its connection, statuses and start point: a
        new start point starts a new watcher.
    :param remember_for: how long a lead in a watched status is remembered after its last change
        (a timedelta or seconds; default 90 days, Octanist's lead lifetime). A lead edited after
        being forgotten while still in the status is reported once more.
    """

    def __init__(
        self,
        statuses: str | Iterable[str] = (WON,),
        octanist_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = DEFAULT_EVENT_POLL_INTERVAL,
        updated_since: str | datetime | date | None = None,
        remember_for: timedelta | float = DEFAULT_REMEMBER_FOR,
    ) -> None:
        super().__init__()
        # Everything is normalised here, so equal watchers serialize to equal kwargs: Airflow
        # de-duplicates watchers by a hash of them. Nothing time-dependent ("now") is resolved here.
        chosen = normalize_statuses(statuses)
        self.statuses: tuple[str, ...] = tuple(s for s in LEAD_STATUSES if s in chosen)
        self.octanist_conn_id = check_conn_id(octanist_conn_id)
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.updated_since: str | None = None
        if updated_since is not None:
            start = to_utc(updated_since, "updated_since")
            self.updated_since = cursor_timestamp(start)
        self.remember_for = _seconds(
            remember_for.total_seconds() if isinstance(remember_for, timedelta) else remember_for,
            "remember_for",
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the plain-JSON arguments that rebuild this trigger (no secrets)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "statuses": list(self.statuses),
                "octanist_conn_id": self.octanist_conn_id,
                "poll_interval": self.poll_interval,
                "updated_since": self.updated_since,
                "remember_for": self.remember_for,
            },
        )

    def run(self) -> AsyncIterator[Any]:
        """
        Poll on its own and yield one ``TriggerEvent`` per poll that found status entries.

        The triggerer uses this when watchers cannot share a poll (before Airflow 3.3.2). Not an
        ``async def``: it hands over the poll loop's async generator itself, so cancelling the
        trigger closes the loop (and its HTTP client) at once.
        """
        from airflow_provider_octanist.triggers._watch.watch import watch

        return watch(self._config(), self._asset_state_store(), self.log)

    def shared_stream_key(self) -> Hashable | None:
        """
        Share one poll among the watchers of one connection and poll interval (Airflow 3.3.2+).

        Each watcher still keeps its own cursor, statuses and state; ``None`` (own poll loop) where
        Airflow cannot confirm that events were stored before the state is written.
        """
        if not ack_streams_supported():
            return None
        return shared_key(self.octanist_conn_id, self.poll_interval)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedLeadPoll:
        """
        The shared poll of a group of watchers, in Airflow's ack mode.

        :param kwargs: the serialized arguments of one watcher of the group.
        """
        from airflow_provider_octanist.triggers._watch.shared_poll import SharedLeadPoll

        trigger = cls(**kwargs)
        return SharedLeadPoll(
            shared_key(trigger.octanist_conn_id, trigger.poll_interval),
            trigger.octanist_conn_id,
            trigger.poll_interval,
        )

    def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """
        This watcher's events from the shared poll: its own statuses, from its own cursor.

        :param shared_stream: the segments of the shared poll, as Airflow hands them over.
        """
        from airflow_provider_octanist.triggers._watch.shared_poll import watch_shared

        return watch_shared(self._config(), self._asset_state_store(), shared_stream, self.log)

    def _asset_state_store(self) -> Any:
        # Injected by the Airflow 3.3+ triggerer before the trigger starts; absent before 3.3.
        return getattr(self, "asset_state_store", None)

    def _config(self) -> WatchConfig:
        # The change feed's machinery is imported when a watcher runs, not when a DAG file that
        # declares one is parsed.
        from airflow_provider_octanist.triggers._watch.start import WatchConfig
        from airflow_provider_octanist.triggers._watch.state_slot import state_key

        return WatchConfig(
            octanist_conn_id=self.octanist_conn_id,
            statuses=self.statuses,
            poll_interval=self.poll_interval,
            updated_since=(to_utc(self.updated_since, "updated_since") if self.updated_since else None),
            remember_for=timedelta(seconds=self.remember_for),
            state_key=state_key(self.octanist_conn_id, self.statuses, self.updated_since),
        )


def _seconds(value: Any, what: str) -> float:
    return positive_number(value, what, must_be="a positive number of seconds")
