"""
The stand-alone poll loop of one lead watcher (one poll per watcher), used wherever watchers
cannot share a poll (before Airflow 3.3.2).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.triggers._feed import lead_source
from airflow_provider_octanist.triggers._feed.lead_source import LeadSource
from airflow_provider_octanist.triggers._watch.start import open_state
from airflow_provider_octanist.triggers._watch.state_slot import StateSlot
from airflow_provider_octanist.triggers._watch.watcher import Watcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_octanist.triggers._watch.start import WatchConfig

log = logging.getLogger(__name__)


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
        watcher = Watcher(config, state, source.health, logger)
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
            event = watcher.absorb(changes)
            if event is not None:
                yield event
            if changes.complete:
                await lead_source.sleep(max(0.0, polled + config.poll_interval - loop.time()))
    finally:
        await source.aclose()
