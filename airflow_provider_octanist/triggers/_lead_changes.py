"""
The engine behind ``OctanistLeadEventTrigger``: find lead changes, turn them into status entries, keep state.

Pieces, from the bottom up:

- :class:`Cursor` — the watermark: an ``updatedAt`` plus the ids already handled at exactly that
  instant, so leads sharing one millisecond are neither lost nor doubled.
- :func:`fetch_changes` — keyset paging over ``GET /leads?sort=updatedAt:asc``: after every page
  the lower bound moves to the newest ``updatedAt`` seen and paging restarts at page 1, so leads
  changing while we page cannot make us skip one.
- :class:`WatchState` — one watcher's cursor plus its memory of which leads are in a watched status
  (to report *entries* into a status, not every edit of a lead that stays won).
- :class:`StateSlot` — where a watcher keeps that state on Airflow 3.3+: the asset state store.
- :class:`LeadSource` — the async hook plus the error policy (backoff, slow retries on a bad key).
- :func:`watch` — the stand-alone poll loop (``OctanistLeadEventTrigger.run``).
- :class:`SharedLeadPoll` and :func:`watch_shared` — one poll shared by several watchers of the same
  connection (Airflow's shared streams in ack mode), each with its own cursor and statuses.

Nothing here imports an HTTP client or the hook at module level; the trigger module imports this
one, and DAG files import the trigger module on every parse.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._backoff import backoff_seconds, is_transient
from airflow_provider_octanist._timestamps import (
    cursor_timestamp,
    parse_timestamp,
    utc_now,
    whole_millisecond,
)
from airflow_provider_octanist.events import LEADS_EVENT_KIND, LEADS_EVENT_VERSION
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistError,
    OctanistResponseError,
)
from airflow_provider_octanist.statuses import LEAD_STATUSES, normalize_status

if TYPE_CHECKING:
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

log = logging.getLogger(__name__)

PAGE_SIZE = 100
"""Leads per list request: the API's maximum, so a poll costs as few requests as possible."""

MAX_PAGES_PER_POLL = 1_000
"""A poll reads at most this many pages (100,000 changes) before reporting what it found."""

SLOW_RETRY_SECONDS = 300.0
"""A revoked key or a broken connection is retried no faster than this (or the poll interval)."""

STATE_VERSION = 1
_STATE_KEY_PREFIX = "octanist.lead_events"

Lead = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# The watermark
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """
    A position in the stream of lead changes ordered by ``updatedAt``.

    Every change before ``at`` is handled, and so are the changes at exactly ``at`` of the leads in
    ``ids``. The id set is what makes equal timestamps safe: the API may order leads that share an
    ``updatedAt`` in any way, so "seen up to this lead" would be meaningless.
    """

    at: datetime
    ids: frozenset[str] = frozenset()

    def admits(self, at: datetime, lead_id: str) -> bool:
        """Whether the change of ``lead_id`` at ``at`` lies after this position."""
        return at > self.at or (at == self.at and lead_id not in self.ids)

    def past(self, at: datetime, lead_id: str) -> Cursor:
        """The position once the change of ``lead_id`` at ``at`` is handled as well."""
        if at > self.at:
            return Cursor(at, frozenset((lead_id,)))
        if at == self.at and lead_id not in self.ids:
            return Cursor(at, self.ids | {lead_id})
        return self

    def covers(self, other: Cursor) -> bool:
        """Whether everything handled at ``other`` is handled here too (this position is not behind it)."""
        return self.at > other.at or (self.at == other.at and self.ids >= other.ids)

    def furthest(self, other: Cursor) -> Cursor:
        """The later of two positions (with the same instant: everything either has handled)."""
        if self.at != other.at:
            return self if self.at > other.at else other
        return self if self.ids >= other.ids else Cursor(self.at, self.ids | other.ids)

    @staticmethod
    def earliest(cursors: Iterable[Cursor]) -> Cursor:
        """The position every one of ``cursors`` has reached."""
        result: Cursor | None = None
        for cursor in cursors:
            if result is None or cursor.at < result.at:
                result = cursor
            elif cursor.at == result.at:
                result = Cursor(result.at, result.ids & cursor.ids)
        if result is None:
            raise ValueError("earliest() needs at least one cursor.")
        return result

    def to_json(self) -> dict[str, Any]:
        return {"updatedAt": cursor_timestamp(self.at), "ids": sorted(self.ids)}

    @classmethod
    def from_json(cls, data: Any) -> Cursor:
        at = parse_timestamp(data.get("updatedAt")) if isinstance(data, dict) else None
        ids = data.get("ids") if isinstance(data, dict) else None
        if at is None or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"not a cursor: {data!r:.200}")
        return cls(at, frozenset(ids))


@dataclass(frozen=True)
class Change:
    """One lead as a list response showed it, positioned by its ``updatedAt``."""

    at: datetime
    lead_id: str
    lead: Lead

    @property
    def key(self) -> tuple[datetime, str]:
        return self.at, self.lead_id


def _positioned(items: Iterable[Any], call: str) -> list[Change]:
    """The leads of a page that carry a readable ``updatedAt`` (others cannot be placed and are skipped)."""
    changes: list[Change] = []
    for lead in items:
        at = parse_timestamp(lead.get("updatedAt")) if isinstance(lead, dict) else None
        if at is None or not isinstance(lead.get("id"), str):
            log.warning(
                "Octanist %s returned a lead without a readable id/updatedAt; skipped: %.120r", call, lead
            )
            continue
        changes.append(Change(at, lead["id"], lead))
    return changes


# ----------------------------------------------------------------------------------------------
# Listing changes
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Changes:
    """What one poll found: the changes after ``start`` (ordered, each once) and where it ended."""

    start: Cursor
    end: Cursor
    changes: tuple[Change, ...]
    requests: int
    complete: bool
    """False when the poll stopped at :data:`MAX_PAGES_PER_POLL`: more changes are waiting."""


async def fetch_changes(
    hook: OctanistAsyncHook,
    start: Cursor,
    *,
    status: str | None = None,
    before: datetime | None = None,
    max_pages: int = MAX_PAGES_PER_POLL,
) -> Changes:
    """
    List every lead changed after ``start``, oldest change first, with keyset paging.

    Each request asks for ``updatedAt >= bound`` sorted ascending. After a page the bound moves to
    the newest ``updatedAt`` on it (remembering which ids at that instant were seen) and paging
    restarts at page 1, so a lead edited while we page moves *behind* the bound and is met again,
    never skipped. Only a page made entirely of one instant (at least 100 leads in one millisecond)
    is read with page numbers, inside that instant alone, until its ``total`` is reached.

    Cost: one request when nothing changed; about one per 100 changed leads otherwise (a page that
    ends inside a millisecond shares those leads with the next page).

    :param hook: the async hook to list with.
    :param start: list the changes after this position.
    :param status: only leads in this status (for seeding a watcher's memory).
    :param before: only changes strictly before this instant.
    :param max_pages: stop after this many requests and report ``complete=False``.
    """
    bound = start
    found: dict[tuple[datetime, str], Change] = {}
    requests = 0
    complete = True
    while True:
        page = await hook.list_leads_page(1, **_after(bound, status=status, before=before))
        requests += 1
        changes = _positioned(page.items, "GET /leads")
        for change in changes:
            if bound.admits(change.at, change.lead_id):
                found.setdefault(change.key, change)
        if not page.has_more or len(page.items) < PAGE_SIZE or not changes:
            break
        if requests >= max_pages:
            complete = False
            break
        newest = max(change.at for change in changes)
        previous = bound
        if newest > bound.at:
            bound = Cursor(newest, frozenset(c.lead_id for c in changes if c.at == newest))
        else:
            bound = Cursor(bound.at, bound.ids | {c.lead_id for c in changes if c.at == bound.at})
        if len(bound.ids) >= PAGE_SIZE:
            # A whole page at one instant: read that millisecond on its own, by page number, so the
            # next request can ask for what comes strictly after it.
            instant, spent = await _drain_instant(hook, bound.at, status=status, before=before)
            requests += spent
            for change in instant:
                if previous.admits(change.at, change.lead_id):
                    found.setdefault(change.key, change)
            bound = Cursor(bound.at, bound.ids | {c.lead_id for c in instant})
        _check_progress(previous, bound, page.request_id)
    ordered = tuple(sorted(found.values(), key=lambda change: change.key))
    end = bound
    for change in ordered:
        end = end.past(change.at, change.lead_id)
    return Changes(
        start=start, end=end.furthest(start), changes=ordered, requests=requests, complete=complete
    )


def _after(bound: Cursor, *, status: str | None, before: datetime | None) -> dict[str, Any]:
    """The ``GET /leads`` filters for "changed after ``bound``", oldest first."""
    filters: dict[str, Any] = {"sort": "updatedAt:asc", "page_size": PAGE_SIZE}
    if status is not None:
        filters["status"] = status
    if before is not None:
        filters["updated_lt"] = before
    if len(bound.ids) >= PAGE_SIZE:
        # Every lead at this instant has been read (see the drain): asking for ">=" again would
        # return a first page made only of them.
        filters["updated_gt"] = bound.at
    else:
        filters["updated_gte"] = bound.at
    return filters


def _check_progress(previous: Cursor, bound: Cursor, request_id: str | None) -> None:
    """Stop a listing whose bound did not move: the API keeps answering with leads already handled."""
    if bound == previous or not bound.covers(previous):
        raise OctanistResponseError(
            "Listing lead changes made no progress: GET /leads returned a full page of leads "
            f"already handled at {cursor_timestamp(bound.at)} while claiming more",
            request_id=request_id,
            hint="The API's filters or sort may have changed; please report it with the request id.",
        )


_DRAIN_ATTEMPTS = 3


async def _drain_instant(
    hook: OctanistAsyncHook, instant: datetime, *, status: str | None, before: datetime | None
) -> tuple[list[Change], int]:
    """
    Read every lead whose ``updatedAt`` is exactly ``instant``, by page number within that millisecond.

    Page numbers are only safe while nothing moves; leads leaving the instant (edited again) move
    out of it, which can shift a page. The listing's ``total`` tells whether we missed one, and the
    whole instant is read again (a bounded number of times) until none is missing.
    """
    floor = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    upper = floor + timedelta(milliseconds=1)
    if before is not None:
        upper = min(upper, before)
    seen: dict[str, Change] = {}
    requests = 0
    for _ in range(_DRAIN_ATTEMPTS):
        number, total = 1, None
        while True:
            filters: dict[str, Any] = {
                "sort": "updatedAt:asc",
                "page_size": PAGE_SIZE,
                "updated_gte": floor,
                "updated_lt": upper,
            }
            if status is not None:
                filters["status"] = status
            page = await hook.list_leads_page(number, **filters)
            requests += 1
            for change in _positioned(page.items, "GET /leads"):
                if change.at == instant:
                    seen.setdefault(change.lead_id, change)
            total = page.total
            if not page.has_more or len(page.items) < PAGE_SIZE or number >= MAX_PAGES_PER_POLL:
                break
            number += 1
        if total is None or len(seen) >= total:
            break
    return list(seen.values()), requests


# ----------------------------------------------------------------------------------------------
# One watcher's state
# ----------------------------------------------------------------------------------------------


def status_of(lead: Mapping[str, Any]) -> str | None:
    """A lead's canonical status, or ``None`` for a status this provider does not know."""
    status = lead.get("status")
    if not isinstance(status, str):
        return None
    try:
        return normalize_status(status)
    except ValueError:
        return None


@dataclass
class WatchState:
    """
    One watcher's position and memory: everything needed to report each status entry exactly once.

    ``memory`` maps the id of every lead currently in a watched status to that status and the
    ``updatedAt`` it was last seen with. A change of a remembered lead that keeps its status is an
    edit (not reported); a change into a watched status it was not remembered in is an entry
    (reported); a change out of the watched statuses forgets the lead, so a later re-entry is
    reported again. Leads not seen for ``remember_for`` (by Octanist's clock) are forgotten to
    bound the memory.
    """

    statuses: tuple[str, ...]
    remember_for: timedelta
    start: datetime
    cursor: Cursor
    memory: dict[str, tuple[str, datetime]] = field(default_factory=dict)

    @classmethod
    def fresh(
        cls,
        statuses: tuple[str, ...],
        remember_for: timedelta,
        start: datetime,
        memory: dict[str, tuple[str, datetime]] | None = None,
    ) -> WatchState:
        """A watcher that has handled nothing after ``start``."""
        return cls(statuses, remember_for, start, Cursor(start), dict(memory or {}))

    def take(self, changes: Iterable[Change]) -> list[Lead]:
        """
        Apply the changes after this watcher's cursor, in order; return the status entries among them.

        Each entry is the lead as listed plus ``previousStatus``: the watched status the lead left
        (``None`` when it came from a status this watcher does not watch).
        """
        entries: list[Lead] = []
        for change in sorted(changes, key=lambda c: c.key):
            if not self.cursor.admits(change.at, change.lead_id):
                continue
            self.cursor = self.cursor.past(change.at, change.lead_id)
            known = self.memory.get(change.lead_id)
            if known is not None and change.at < known[1]:
                continue  # older than what we already know of this lead
            status = status_of(change.lead)
            if status is not None and status in self.statuses:
                if known is None or known[0] != status:
                    entry = dict(change.lead)
                    entry["status"] = status
                    entry["previousStatus"] = known[0] if known is not None else None
                    entries.append(entry)
                self.memory[change.lead_id] = (status, change.at)
            else:
                self.memory.pop(change.lead_id, None)
        self.forget_before(self.cursor.at - self.remember_for)
        return entries

    def advance_to(self, cursor: Cursor) -> None:
        """Move the cursor to ``cursor`` unless it is already further (never backwards)."""
        self.cursor = self.cursor.furthest(cursor)

    def forget_before(self, moment: datetime) -> None:
        """Drop the memory of leads last seen before ``moment``."""
        stale = [lead_id for lead_id, (_, at) in self.memory.items() if at < moment]
        for lead_id in stale:
            del self.memory[lead_id]

    def to_json(self) -> dict[str, Any]:
        """The state as plain JSON, as it is kept in the asset state store."""
        return {
            "version": STATE_VERSION,
            "start": cursor_timestamp(self.start),
            "cursor": self.cursor.to_json(),
            "memory": {
                lead_id: [status, cursor_timestamp(at)]
                for lead_id, (status, at) in sorted(self.memory.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any, statuses: tuple[str, ...], remember_for: timedelta) -> WatchState:
        """Read a stored state; ``ValueError`` when it is not one this version wrote."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not a lead watcher state of version {STATE_VERSION}: {data!r:.200}")
        start = parse_timestamp(data.get("start"))
        raw_memory = data.get("memory")
        if start is None or not isinstance(raw_memory, dict):
            raise ValueError(f"not a lead watcher state: {data!r:.200}")
        memory: dict[str, tuple[str, datetime]] = {}
        for lead_id, entry in raw_memory.items():
            at = parse_timestamp(entry[1]) if isinstance(entry, list) and len(entry) == 2 else None
            if at is None or entry[0] not in LEAD_STATUSES:
                raise ValueError(f"not a lead watcher memory entry: {lead_id!r}: {entry!r:.100}")
            if entry[0] in statuses:
                memory[lead_id] = (entry[0], at)
        return cls(statuses, remember_for, start, Cursor.from_json(data.get("cursor")), memory)


def event_payload(entries: Sequence[Lead], statuses: Sequence[str]) -> dict[str, Any]:
    """The payload of one trigger event: every lead one poll found entering a watched status."""
    return {
        "kind": LEADS_EVENT_KIND,
        "version": LEADS_EVENT_VERSION,
        "statuses": list(statuses),
        "polled_at": cursor_timestamp(utc_now()),
        "leads": list(entries),
    }


def make_event(entries: Sequence[Lead], statuses: Sequence[str]) -> Any:
    """A ``TriggerEvent`` carrying ``entries``."""
    from airflow.triggers.base import TriggerEvent

    return TriggerEvent(event_payload(entries, statuses))


# ----------------------------------------------------------------------------------------------
# Where the state lives (Airflow 3.3+)
# ----------------------------------------------------------------------------------------------


def state_key(octanist_conn_id: str, statuses: Sequence[str], updated_since: str | None) -> str:
    """
    The asset-state-store key of one watcher.

    An asset may have several watchers, so the key names what makes a watcher's state its own: the
    connection, the statuses and the start point. Changing the poll interval keeps the state.
    """
    identity = json.dumps([octanist_conn_id, list(statuses), updated_since], separators=(",", ":"))
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:12]
    return f"{_STATE_KEY_PREFIX}/{octanist_conn_id}/{'+'.join(statuses)}/{digest}"


class StateSlot:
    """
    One watcher's state in the asset state store of every asset its trigger watches.

    Airflow de-duplicates watchers by their trigger's arguments, so one trigger can watch several
    assets; its state is then written to each of them and read back from whichever is furthest.
    """

    def __init__(self, store: Any, key: str) -> None:
        self.key = key
        self.accessors = _accessors_of(store)

    @classmethod
    def of(cls, store: Any, key: str) -> StateSlot | None:
        """The slot in ``store`` (the trigger's ``asset_state_store``), or ``None`` without one."""
        return None if store is None else cls(store, key)

    async def load(self) -> Any:
        """The stored state, the furthest one when the assets disagree; ``None`` when there is none."""
        found: list[Any] = []
        for accessor in self.accessors:
            value = await accessor.aget(self.key, None)
            if value is not None:
                found.append(value)
        if len(found) <= 1:
            return found[0] if found else None

        def position(value: Any) -> tuple[datetime, int]:
            try:
                cursor = Cursor.from_json(value.get("cursor"))
            except (AttributeError, ValueError):
                return datetime.min.replace(tzinfo=timezone.utc), -1
            return cursor.at, len(cursor.ids)

        return max(found, key=position)

    async def save(self, value: dict[str, Any]) -> None:
        """Write the state to every watched asset."""
        for accessor in self.accessors:
            await accessor.aset(self.key, value)


def _accessors_of(store: Any) -> list[Any]:
    """
    The per-asset accessors inside the trigger's ``AssetStateStoreAccessors``.

    Its ``aget``/``aset`` shortcuts only work for exactly one asset; a trigger shared by several
    assets must address each one. Airflow 3.3 keeps them in ``_by_name``/``_by_uri`` and offers no
    public way to list them, so they are read defensively; anything else is used as one accessor.
    """
    by_name, by_uri = getattr(store, "_by_name", None), getattr(store, "_by_uri", None)
    if isinstance(by_name, dict) and isinstance(by_uri, dict) and (by_name or by_uri):
        return [*by_name.values(), *by_uri.values()]
    return [store]


# ----------------------------------------------------------------------------------------------
# The API side: hook and error policy
# ----------------------------------------------------------------------------------------------


class LeadSource:
    """
    The async hook of one poll loop and its error policy.

    Transient API errors (5xx, 429, timeouts, garbled answers; the hook has already retried them)
    pause the loop with capped exponential backoff (see ``_backoff``). A rejected key (401/403), a
    connection that cannot be read or any other error is logged as an error and retried no faster
    than every ``max(poll_interval, 5 min)``, with a fresh hook so a fixed connection is picked up.
    The loop itself never ends because of an error.

    :param octanist_conn_id: the Airflow connection to read leads with.
    :param poll_interval: seconds between polls; the base of every backoff.
    :param logger: where to log (the trigger's own logger).
    """

    def __init__(self, octanist_conn_id: str, poll_interval: float, logger: Any = None) -> None:
        self.octanist_conn_id = octanist_conn_id
        self.poll_interval = poll_interval
        self.log = logger if logger is not None else log
        self.requests = 0
        """List requests made so far (for logs and benchmarks)."""
        self._hook: OctanistAsyncHook | None = None
        self._retired: list[OctanistAsyncHook] = []
        self._failures = 0

    @property
    def hook(self) -> OctanistAsyncHook:
        """The hook of the current attempt (created on first use, replaced after a bad-key error)."""
        if self._hook is None:
            from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

            self._hook = OctanistAsyncHook(self.octanist_conn_id)
        return self._hook

    async def fetch(self, start: Cursor, **filters: Any) -> Changes:
        """:func:`fetch_changes` with this source's hook; a success resets the backoff."""
        changes = await fetch_changes(self.hook, start, **filters)
        self.requests += changes.requests
        self._failures = 0
        return changes

    async def seed(
        self, statuses: Sequence[str], start: datetime, remember_for: timedelta
    ) -> dict[str, tuple[str, datetime]]:
        """
        The leads already in a watched status at ``start`` that changed within ``remember_for`` before it.

        Without this memory a watcher would take the first edit of a lead won before it started
        for a new win. Costs one listing per watched status (about one request per 100 such leads),
        once, when a watcher starts without stored state.
        """
        memory: dict[str, tuple[str, datetime]] = {}
        for status in statuses:
            position = Cursor(start - remember_for)
            while True:
                changes = await self.fetch(position, status=status, before=start)
                for change in changes.changes:
                    if status_of(change.lead) == status:
                        memory[change.lead_id] = (status, change.at)
                position = changes.end
                if changes.complete:
                    break
        return memory

    def pause_after(self, exc: BaseException, doing: str) -> float:
        """Log a failed attempt to do ``doing`` and return the seconds to wait before the next one."""
        self._failures += 1
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
        if isinstance(exc, OctanistAuthError):
            self.log.error(
                "Octanist lead watcher could not %s: %s No lead changes are seen until connection %r "
                "has a valid API key; trying again every %.0f s.",
                doing,
                exc,
                self.octanist_conn_id,
                slow,
            )
        else:
            self.log.error(
                "Octanist lead watcher (connection %r) could not %s: %s: %s. Trying again every %.0f s.",
                self.octanist_conn_id,
                doing,
                type(exc).__name__,
                exc,
                slow,
                exc_info=not isinstance(exc, (OctanistError, ValueError)),
            )
        return slow

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


Sleep = Callable[[float], Any]


async def _sleep(seconds: float) -> None:
    """How every loop here waits (one place, so tests can record the waits instead)."""
    await asyncio.sleep(seconds)


async def _until_done(attempt: Callable[[], Any], source: LeadSource, doing: str, sleep: Sleep) -> Any:
    """Await ``attempt()`` until it succeeds, pausing after each failure as ``source`` decides."""
    while True:
        try:
            return await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await sleep(source.pause_after(exc, doing))


# ----------------------------------------------------------------------------------------------
# Starting a watcher
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchConfig:
    """What one watcher is: its trigger's arguments, resolved."""

    octanist_conn_id: str
    statuses: tuple[str, ...]
    poll_interval: float
    updated_since: datetime | None
    remember_for: timedelta
    state_key: str


async def open_state(
    config: WatchConfig,
    slot: StateSlot | None,
    source: LeadSource,
    logger: Any,
    sleep: Sleep,
    *,
    shared: bool,
) -> tuple[WatchState, dict[str, Any] | None]:
    """
    Resume a watcher from the asset state store, or start it at its start point (and log which).

    A new watcher's start point is ``updated_since`` or, by default, now; its memory is seeded with
    the leads already in a watched status, and the fresh state is written at once so a restart
    resumes from this start point instead of a later "now". Returns the state and what is stored.
    """
    how = (
        f"shares the poll of connection {config.octanist_conn_id!r} (every {config.poll_interval:g} s)"
        if shared
        else f"polls connection {config.octanist_conn_id!r} every {config.poll_interval:g} s"
    )
    where = "in the asset state store" if slot is not None else "in memory only (no asset state store)"
    if slot is not None:
        stored = await _until_done(slot.load, source, "read its state from the asset state store", sleep)
        if stored is not None:
            try:
                state = WatchState.from_json(stored, config.statuses, config.remember_for)
            except ValueError as exc:
                logger.error(
                    "The stored state %r of the Octanist lead watcher is unreadable (%s); starting again "
                    "from its start point.",
                    config.state_key,
                    exc,
                )
            else:
                logger.info(
                    "Octanist lead watcher resumes after %s (%d lead(s) remembered in %s); it %s.",
                    cursor_timestamp(state.cursor.at),
                    len(state.memory),
                    "/".join(config.statuses),
                    how,
                )
                return state, state.to_json()
    start = config.updated_since or whole_millisecond(utc_now())
    memory = await _until_done(
        lambda: source.seed(config.statuses, start, config.remember_for),
        source,
        f"list the leads already {'/'.join(config.statuses)}",
        sleep,
    )
    state = WatchState.fresh(config.statuses, config.remember_for, start, memory)
    logger.info(
        "Octanist lead watcher starts at %s; %d lead(s) were already %s; it %s, state %s.",
        cursor_timestamp(start),
        len(memory),
        "/".join(config.statuses),
        how,
        where,
    )
    if slot is None:
        return state, None
    snapshot = state.to_json()
    await _until_done(
        lambda: slot.save(snapshot), source, "write its start point to the asset state store", sleep
    )
    return state, snapshot


def _log_entries(logger: Any, entries: Sequence[Lead], statuses: Sequence[str]) -> None:
    shown = ", ".join(f"{lead['id']} ({lead.get('status')})" for lead in entries[:10])
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    logger.info("%d Octanist lead(s) entered %s: %s%s.", len(entries), "/".join(statuses), shown, more)


# ----------------------------------------------------------------------------------------------
# The stand-alone loop (one poll per watcher)
# ----------------------------------------------------------------------------------------------


async def watch(
    config: WatchConfig, store: Any, logger: Any = None, *, sleep: Sleep | None = None
) -> AsyncIterator[Any]:
    """
    Poll for lead changes and yield one ``TriggerEvent`` per poll that found status entries.

    Used where Airflow cannot confirm that an event was stored (no shared-stream ack channel).
    The state is therefore written one poll interval *after* an event was handed to Airflow, just
    before the next poll: by then the triggerer has long stored the event, and a crash in between
    repeats the event rather than losing it (at-least-once). Never written when the loop is
    cancelled, because events of the last moments may not have been stored.

    :param config: the watcher.
    :param store: the trigger's ``asset_state_store`` (``None`` before Airflow 3.3: state in memory).
    :param logger: where to log.
    :param sleep: how to wait; default :func:`_sleep`.
    """
    logger = logger if logger is not None else log
    sleep = sleep if sleep is not None else _sleep
    source = LeadSource(config.octanist_conn_id, config.poll_interval, logger)
    slot = StateSlot.of(store, config.state_key)
    try:
        state, saved = await open_state(config, slot, source, logger, sleep, shared=False)
        loop = asyncio.get_running_loop()
        while True:
            if slot is not None and (snapshot := state.to_json()) != saved:
                try:
                    await slot.save(snapshot)
                    saved = snapshot
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning(
                        "Octanist lead watcher could not save its state (%s); retrying before the next poll.",
                        exc,
                    )
            polled = loop.time()
            try:
                changes = await source.fetch(state.cursor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await sleep(source.pause_after(exc, "list lead changes"))
                continue
            entries = state.take(changes.changes)
            state.advance_to(changes.end)
            if entries:
                _log_entries(logger, entries, config.statuses)
                yield make_event(entries, config.statuses)
            if changes.complete:
                await sleep(max(0.0, polled + config.poll_interval - loop.time()))
    finally:
        await source.aclose()


# ----------------------------------------------------------------------------------------------
# One poll shared by several watchers (Airflow shared streams, ack mode)
# ----------------------------------------------------------------------------------------------


@functools.cache
def ack_streams_supported() -> bool:
    """
    Whether this Airflow shares streams in ack mode the way this provider relies on (3.3.2's design).

    That design hands ``SharedStreamProducer.advance()`` batches of events whose trigger events every
    subscriber has had confirmed *stored in the metadata database*. Earlier shapes of the API (or
    none at all) make the trigger fall back to its own poll loop.
    """
    try:
        from airflow.triggers import shared_stream
        from airflow.triggers.base import BaseEventTrigger
    except ImportError:
        return False
    names = (
        "SharedStreamManager",
        "SharedStreamProducer",
        "AdvanceItem",
        "AdvanceOutcome",
        "reject_shared_stream_event",
    )
    if not all(hasattr(shared_stream, name) for name in names):
        return False
    if not hasattr(shared_stream.SharedStreamManager, "bind_pending_event"):
        return False
    if not hasattr(BaseEventTrigger, "create_shared_stream_producer"):
        return False
    parameters = list(inspect.signature(shared_stream.SharedStreamProducer.advance).parameters)
    return parameters == ["self", "batch"]


def shared_key(octanist_conn_id: str, poll_interval: float) -> tuple[str, str, float]:
    """The shared-stream key: watchers of one connection with one poll interval share a poll."""
    return ("airflow_provider_octanist.lead_changes", octanist_conn_id, poll_interval)


@dataclass(frozen=True)
class Segment:
    """One shared poll's result, as broadcast to every watcher of the group."""

    token: str
    """Which poll loop produced it (a watcher only confirms segments of the loop it listens to)."""
    seq: int
    changes: Changes


class _Member:
    """A watcher taking part in a shared poll: its state and what it still has to save."""

    def __init__(
        self, state: WatchState, slot: StateSlot | None, saved: dict[str, Any] | None, logger: Any
    ) -> None:
        self.state = state
        self.slot = slot
        self.log = logger
        self._staged: dict[tuple[str, int], dict[str, Any]] = {}
        self._saved = saved
        self._saved_seq = 0
        self._unsaved: tuple[int, dict[str, Any]] | None = None
        self._lock: asyncio.Lock | None = None

    def stage(self, segment: Segment) -> None:
        """Remember the state after ``segment``; it is saved once Airflow has stored the segment's event."""
        self._staged[(segment.token, segment.seq)] = self.state.to_json()

    async def confirm(self, token: str, clean: set[int], upto: int) -> None:
        """
        Save the state of the newest segment in ``clean`` this watcher staged; forget those up to ``upto``.

        ``clean`` holds the segments whose events every subscriber had confirmed stored. A segment
        that was not clean is never saved on its own; a later clean one supersedes it.
        """
        mine = [seq for (t, seq) in self._staged if t == token and seq in clean]
        snapshot = self._staged.get((token, max(mine))) if mine else None
        chosen = max(mine) if mine else 0
        for staged_key in [k for k in self._staged if k[0] != token or k[1] <= upto]:
            del self._staged[staged_key]
        if snapshot is not None:
            await self.save(chosen, snapshot)

    async def retry_unsaved(self) -> None:
        """Write a confirmed state whose earlier write failed."""
        if self._unsaved is not None:
            await self.save(*self._unsaved)

    async def save(self, seq: int, snapshot: dict[str, Any]) -> None:
        """Write the state confirmed up to segment ``seq`` (never an older one over a newer one)."""
        if self.slot is None:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if seq < self._saved_seq or (seq == self._saved_seq and snapshot == self._saved):
                return
            try:
                if snapshot != self._saved:
                    await self.slot.save(snapshot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._unsaved is None or self._unsaved[0] < seq:
                    self._unsaved = (seq, snapshot)
                self.log.warning(
                    "Octanist lead watcher could not save its state (%s); retrying before the next poll.", exc
                )
                return
            self._saved, self._saved_seq = snapshot, seq
            if self._unsaved is not None and self._unsaved[0] <= seq:
                self._unsaved = None


class _Watchers:
    """The watchers of one shared-stream key in this triggerer, and who polls for them."""

    def __init__(self) -> None:
        self.members: list[_Member] = []
        self.polls = 0
        self.joins = 0
        self._joined: asyncio.Event | None = None

    @property
    def joined(self) -> asyncio.Event:
        if self._joined is None:
            self._joined = asyncio.Event()
        return self._joined

    async def wait_for_members(self) -> None:
        while not self.members:
            self.joined.clear()
            await self.joined.wait()

    async def pause(self, seconds: float, since_joins: int) -> None:
        """Wait ``seconds``, or less when a watcher joined since ``since_joins`` (it may need a catch-up)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.joins == since_joins:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self.joined.clear()
            try:
                await asyncio.wait_for(self.joined.wait(), remaining)
            except asyncio.TimeoutError:
                return


_WATCHERS: dict[Hashable, _Watchers] = {}


def _watchers(key: Hashable) -> _Watchers:
    return _WATCHERS.setdefault(key, _Watchers())


def _release(key: Hashable) -> None:
    watchers = _WATCHERS.get(key)
    if watchers is not None and not watchers.members and not watchers.polls:
        del _WATCHERS[key]


class SharedLeadPoll:
    """
    The producer of a shared lead-change stream in ack mode: one poll for every watcher of a key.

    Each watcher keeps its own cursor; the poll starts at the earliest of them, so a watcher that
    joins late, or resumes from an older stored position, is caught up by the next poll while the
    others skip what they already had. Airflow calls :meth:`advance` once every watcher has moved
    past a segment *and* the trigger events it derived were stored in the metadata database; only
    then is each watcher's state (cursor and memory) written to its asset state store. A crash
    before that write repeats the segment on restart; no crash can lose it.

    Airflow only needs the four methods below, so this does not subclass ``SharedStreamProducer``
    (its module does not exist before Airflow 3.3).

    :param key: the shared-stream key (see :func:`shared_key`).
    :param octanist_conn_id: the connection to poll with.
    :param poll_interval: seconds between polls.
    """

    def __init__(self, key: Hashable, octanist_conn_id: str, poll_interval: float) -> None:
        self.key = key
        self.poll_interval = poll_interval
        self.token = uuid.uuid4().hex
        self.source = LeadSource(octanist_conn_id, poll_interval)
        self._seq = 0

    def get_advance_lane(self, broker_payload: Any) -> Hashable:
        """One lane: segments are confirmed strictly in the order they were polled."""
        return None

    async def open_stream(self) -> AsyncIterator[tuple[Segment, int]]:
        """Poll forever (Airflow cancels it when the last watcher leaves); yield each segment with changes."""
        watchers = _watchers(self.key)
        watchers.polls += 1
        try:
            loop = asyncio.get_running_loop()
            while True:
                await watchers.wait_for_members()
                for member in list(watchers.members):
                    await member.retry_unsaved()
                if not watchers.members:
                    continue  # the last watcher left while a state was written
                joins, polled = watchers.joins, loop.time()
                start = Cursor.earliest(member.state.cursor for member in watchers.members)
                try:
                    changes = await self.source.fetch(start)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await _sleep(self.source.pause_after(exc, "list lead changes"))
                    continue
                if changes.changes:
                    self._seq += 1
                    yield Segment(self.token, self._seq, changes), self._seq
                if changes.complete:
                    await watchers.pause(max(0.0, polled + self.poll_interval - loop.time()), joins)
        finally:
            watchers.polls -= 1
            _release(self.key)
            await self.source.aclose()

    async def advance(self, batch: Sequence[Any]) -> None:
        """Save every watcher's state up to the newest segment of ``batch`` all watchers confirmed."""
        clean: set[int] = set()
        for item in batch:
            outcome = item.outcome
            if outcome.is_clean:
                clean.add(item.broker_payload)
            elif outcome.failed or outcome.rejected:
                log.warning(
                    "Octanist lead segment %d was not confirmed by every watcher (%d failed); their "
                    "state is saved with a later segment, or the segment is repeated after a restart.",
                    item.broker_payload,
                    outcome.failed + outcome.rejected,
                )
        upto = max(item.broker_payload for item in batch)
        watchers = _WATCHERS.get(self.key)
        for member in list(watchers.members if watchers is not None else ()):
            await member.confirm(self.token, clean, upto)

    async def aclose(self) -> None:
        """Close the hook (also closed when the poll ends; closing twice is harmless)."""
        await self.source.aclose()


async def watch_shared(
    config: WatchConfig,
    store: Any,
    shared_stream: AsyncIterator[Any],
    logger: Any = None,
    *,
    sleep: Sleep | None = None,
) -> AsyncIterator[Any]:
    """
    One watcher's side of a shared poll: filter each segment by its own cursor and statuses.

    A segment that starts after this watcher's cursor (it joined with an older position) is left
    alone: the next poll starts at this watcher's cursor and brings the gap. The trigger event of
    a segment is yielded before the next segment is pulled, which is how Airflow ties the event to
    the segment for the confirmation that releases the state write.
    """
    logger = logger if logger is not None else log
    sleep = sleep if sleep is not None else _sleep
    source = LeadSource(config.octanist_conn_id, config.poll_interval, logger)
    slot = StateSlot.of(store, config.state_key)
    try:
        state, saved = await open_state(config, slot, source, logger, sleep, shared=True)
    finally:
        await source.aclose()
    key = shared_key(config.octanist_conn_id, config.poll_interval)
    member = _Member(state, slot, saved, logger)
    watchers = _watchers(key)
    watchers.members.append(member)
    watchers.joins += 1
    watchers.joined.set()
    try:
        async for segment in shared_stream:
            if not isinstance(segment, Segment):
                raise TypeError(
                    f"Unexpected item on the shared Octanist lead stream: {type(segment).__name__}"
                )
            if not state.cursor.covers(segment.changes.start):
                continue
            entries = state.take(segment.changes.changes)
            state.advance_to(segment.changes.end)
            member.stage(segment)
            if entries:
                _log_entries(logger, entries, config.statuses)
                yield make_event(entries, config.statuses)
    finally:
        watchers.members.remove(member)
        _release(key)
