"""
What one lead watcher is (``WatchConfig``) and how it starts: resumed from its stored state, or
at its start point with a memory of the leads already in a watched status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist._timestamps import cursor_timestamp
from airflow_provider_octanist.statuses import status_of
from airflow_provider_octanist.triggers._watch.watch_state import WatchState

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime, timedelta

    from airflow_provider_octanist.triggers._feed.lead_source import LeadSource
    from airflow_provider_octanist.triggers._watch.state_slot import StateSlot


@dataclass(frozen=True)
class WatchConfig:
    """What one watcher is: its trigger's arguments, resolved."""

    octanist_conn_id: str
    statuses: tuple[str, ...]
    poll_interval: float
    updated_since: datetime | None
    remember_for: timedelta
    state_key: str


async def seed(
    source: LeadSource, statuses: Sequence[str], start: datetime, remember_for: timedelta
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
            changes = await source.fetch(position, status=status, before=start)
            for change in changes.changes:
                if status_of(change.lead) == status:
                    memory[change.lead_id] = (status, change.at)
            position = changes.end
            if changes.complete:
                break
    return memory


async def open_state(
    config: WatchConfig,
    slot: StateSlot | None,
    source: LeadSource,
    logger: Any,
    *,
    shared: bool,
) -> tuple[WatchState, dict[str, Any] | None]:
    """
    Resume a watcher from the asset state store, or start it at its start point (and log which).

    A new watcher's start point is ``updated_since`` or, by default, now by the server's clock; its
    memory is seeded with the leads already in a watched status, and the fresh state is written at
    once so a restart resumes from this start point instead of a later "now". Returns the state and
    what is stored.
    """
    how = (
        f"shares the poll of connection {config.octanist_conn_id!r} (every {config.poll_interval:g} s)"
        if shared
        else f"polls connection {config.octanist_conn_id!r} every {config.poll_interval:g} s"
    )
    where = "in the asset state store" if slot is not None else "in memory only (no asset state store)"
    if slot is not None:
        stored = await source.until_done(slot.load, "read its state from the asset state store")
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
    start = config.updated_since or await source.until_done(source.server_now, "read Octanist's clock")
    memory = await source.until_done(
        lambda: seed(source, config.statuses, start, config.remember_for),
        f"list the leads already {'/'.join(config.statuses)}",
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
    await source.until_done(lambda: slot.save(snapshot), "write its start point to the asset state store")
    return state, snapshot
