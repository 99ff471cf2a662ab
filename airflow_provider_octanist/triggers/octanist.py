"""
Triggers for Octanist: waiting on one lead (deferrable sensor) and watching for leads that enter a status.

Triggers carry only the connection id and plain values: the API key is fetched from the Airflow
connection inside the triggerer and never serialized.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.triggers import BaseEventTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._checks import check_conn_id, check_max_consecutive_errors, positive_number
from airflow_provider_octanist._timestamps import cursor_timestamp, to_utc
from airflow_provider_octanist.statuses import LEAD_STATUSES, LOST, WON, normalize_statuses
from airflow_provider_octanist.triggers._watch.shared_poll_support import ack_streams_supported, shared_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Iterable

    from airflow_provider_octanist.triggers._watch.shared_poll import SharedLeadPoll
    from airflow_provider_octanist.triggers._watch.start import WatchConfig

STILL_WAITING_EVERY = 3600.0
"""Seconds between two "still waiting" lines of a lead-status trigger whose lead does not change."""


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
    once (see ``triggers/_status/``: ``wait.py``, ``feed.py``, ``deletions.py``). Where the feed
    cannot serve (the API refuses its filter or sort, the answer carries no server time, the lead
    no ``updatedAt``) or with ``shared_feed=False``, it polls ``GET /leads/{id}`` every
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

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait until the lead is at a target or failure status, the end time passes, or errors win."""
        from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
        from airflow_provider_octanist.triggers._status.wait import StatusWait

        hook = OctanistAsyncHook(octanist_conn_id=self.octanist_conn_id)
        try:
            event = await StatusWait(self, hook).run()
        finally:
            # Closed before the event is yielded: Airflow may never resume the generator afterwards.
            await hook.aclose()
        yield event


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
