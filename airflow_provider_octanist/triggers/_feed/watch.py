"""
One lead watcher: start or resume it, turn its status entries into trigger events, and the
stand-alone poll loop (one poll per watcher) used wherever watchers cannot share a poll.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._timestamps import cursor_timestamp, utc_now
from airflow_provider_octanist.events import LEADS_EVENT_KIND, LEADS_EVENT_VERSION
from airflow_provider_octanist.triggers._feed import lead_source
from airflow_provider_octanist.triggers._feed.lead_source import LeadSource
from airflow_provider_octanist.triggers._feed.state_slot import StateSlot
from airflow_provider_octanist.triggers._feed.watch_state import WatchState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from datetime import datetime, timedelta

    from airflow_provider_octanist.triggers._feed.cursor import RawLead

log = logging.getLogger(__name__)


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
        lambda: source.seed(config.statuses, start, config.remember_for),
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


def event_payload(entries: Sequence[RawLead], statuses: Sequence[str]) -> dict[str, Any]:
    """The payload of one trigger event: every lead one poll found entering a watched status."""
    return {
        "kind": LEADS_EVENT_KIND,
        "version": LEADS_EVENT_VERSION,
        "statuses": list(statuses),
        "polled_at": cursor_timestamp(utc_now()),
        "leads": list(entries),
    }


def make_event(entries: Sequence[RawLead], statuses: Sequence[str]) -> Any:
    """A ``TriggerEvent`` carrying ``entries``."""
    from airflow.triggers.base import TriggerEvent

    return TriggerEvent(event_payload(entries, statuses))


def log_entries(logger: Any, entries: Sequence[RawLead], statuses: Sequence[str]) -> None:
    from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

    shown = ", ".join(f"{cap(lead['id'], MAX_SERVER_WORD)} ({lead.get('status')})" for lead in entries[:10])
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    logger.info("%d Octanist lead(s) entered %s: %s%s.", len(entries), "/".join(statuses), shown, more)


async def watch(config: WatchConfig, store: Any, logger: Any = None) -> AsyncIterator[Any]:
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
    """
    logger = logger if logger is not None else log
    source = LeadSource(config.octanist_conn_id, config.poll_interval, logger)
    slot = StateSlot.of(store, config.state_key)
    try:
        state, saved = await open_state(config, slot, source, logger, shared=False)
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
                await source.pause(exc, "list lead changes")
                continue
            entries = state.take(changes.changes, changes.ceiling)
            state.advance_to(changes.end)
            if entries:
                log_entries(logger, entries, config.statuses)
                source.health.reported(len(entries))
                yield make_event(entries, config.statuses)
            if changes.complete:
                await lead_source.sleep(max(0.0, polled + config.poll_interval - loop.time()))
    finally:
        await source.aclose()
