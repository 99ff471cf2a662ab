"""
One lead watcher at work: it absorbs the changes of a poll into its state and turns the status
entries among them into one trigger event; both poll loops (``watch``, ``shared_poll``) use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.events import lead_event_payload

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_octanist._keyset.cursor import RawLead
    from airflow_provider_octanist.triggers._feed.changes import Changes
    from airflow_provider_octanist.triggers._feed.health import FeedHealth
    from airflow_provider_octanist.triggers._watch.start import WatchConfig
    from airflow_provider_octanist.triggers._watch.watch_state import WatchState


class Watcher:
    """
    One watcher: its state (cursor and memory), and the step from a poll's changes to its event.

    :param config: what the watcher is.
    :param state: where it is (see ``start.open_state``).
    :param health: the health of the poll loop it reads from (counts the leads reported).
    :param logger: where to log the entries it reports.
    """

    def __init__(self, config: WatchConfig, state: WatchState, health: FeedHealth, logger: Any) -> None:
        self.config = config
        self.state = state
        self.health = health
        self.log = logger

    def absorb(self, changes: Changes) -> Any:
        """
        Take the status entries among ``changes``, move past them, and return their ``TriggerEvent``.

        ``None`` when the changes hold no entry (the state has moved all the same).
        """
        entries = self.state.take(changes.changes, changes.ceiling)
        self.state.advance_to(changes.end)
        if not entries:
            return None
        log_entries(self.log, entries, self.config.statuses)
        self.health.reported(len(entries))
        from airflow.triggers.base import TriggerEvent

        return TriggerEvent(lead_event_payload(entries, self.config.statuses))


def log_entries(logger: Any, entries: Sequence[RawLead], statuses: Sequence[str]) -> None:
    """One INFO line naming the leads that entered a watched status (the first ten, then a count)."""
    from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

    shown = ", ".join(f"{cap(lead['id'], MAX_SERVER_WORD)} ({lead.get('status')})" for lead in entries[:10])
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    logger.info("%d Octanist lead(s) entered %s: %s%s.", len(entries), "/".join(statuses), shown, more)
