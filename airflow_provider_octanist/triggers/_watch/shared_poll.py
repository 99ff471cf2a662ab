"""
One lead poll shared by several watchers of a connection (Airflow 3.3.2+ shared streams, ack mode),
each with its own cursor and statuses. Import only where ``shared_poll_support`` allows it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.shared_stream import SharedStreamProducer

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist.triggers._feed.lead_source import LeadSource
from airflow_provider_octanist.triggers._watch.shared_poll_support import shared_key
from airflow_provider_octanist.triggers._watch.start import open_state
from airflow_provider_octanist.triggers._watch.state_slot import StateSlot
from airflow_provider_octanist.triggers._watch.watcher import Watcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable, Sequence

    from airflow_provider_octanist.triggers._feed.changes import Changes
    from airflow_provider_octanist.triggers._watch.start import WatchConfig
    from airflow_provider_octanist.triggers._watch.watch_state import WatchState

log = logging.getLogger(__name__)


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


class SharedLeadPoll(SharedStreamProducer):  # type: ignore[misc]
    """
    The producer of a shared lead-change stream in ack mode: one poll for every watcher of a key.

    Each watcher keeps its own cursor; the poll starts at the earliest of them, so a watcher that
    joins late, or resumes from an older stored position, is caught up by the next poll while the
    others skip what they already had. Airflow calls :meth:`advance` once every watcher has moved
    past a segment *and* the trigger events it derived were stored in the metadata database; only
    then is each watcher's state (cursor and memory) written to its asset state store. A crash
    before that write repeats the segment on restart; no crash can lose it.

    :param key: the shared-stream key (see :func:`shared_key`).
    :param octanist_conn_id: the connection to poll with.
    :param poll_interval: seconds between polls.
    """

    def __init__(self, key: Hashable, octanist_conn_id: str, poll_interval: float) -> None:
        self.key = key
        self.poll_interval = poll_interval
        self.token = uuid.uuid4().hex
        self.source = LeadSource(octanist_conn_id, poll_interval, kind="shared_poll")
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
                    await self.source.pause(exc, "list lead changes")
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
) -> AsyncIterator[Any]:
    """
    One watcher's side of a shared poll: filter each segment by its own cursor and statuses.

    A segment that starts after this watcher's cursor (it joined with an older position) is left
    alone: the next poll starts at this watcher's cursor and brings the gap. The trigger event of
    a segment is yielded before the next segment is pulled, which is how Airflow ties the event to
    the segment for the confirmation that releases the state write.
    """
    logger = logger if logger is not None else log
    source = LeadSource(config.octanist_conn_id, config.poll_interval, logger, kind="shared_poll")
    slot = StateSlot.of(store, config.state_key)
    try:
        state, saved = await open_state(config, slot, source, logger, shared=True)
    finally:
        await source.aclose()
    watcher = Watcher(config, state, source.health, logger)
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
            event = watcher.absorb(segment.changes)
            member.stage(segment)
            if event is not None:
                yield event
    finally:
        watchers.members.remove(member)
        _release(key)
