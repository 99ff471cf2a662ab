"""The step both poll loops share: a poll's changes in, one trigger event (and its log line) out."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from airflow_provider_octanist.events import LEADS_EVENT_KIND, leads_from_asset_events
from airflow_provider_octanist.triggers._feed.changes import Changes
from airflow_provider_octanist.triggers._feed.health import FeedHealth
from airflow_provider_octanist.triggers._watch.start import WatchConfig
from airflow_provider_octanist.triggers._watch.watcher import Watcher

if TYPE_CHECKING:
    from triggers._watch.conftest import States

pytest.importorskip("airflow.triggers.base")


def watcher_of(states: States, statuses: tuple[str, ...]) -> Watcher:
    config = WatchConfig("octanist_default", statuses, 60.0, None, states.remember_for, "key")
    state = states.state(statuses, (0, ()), {"kept": ("won", 1)})
    log = logging.getLogger("test.watcher")
    return Watcher(config, state, FeedHealth("event_trigger", "octanist_default", log), log)


def test_a_poll_with_entries_becomes_one_event_read_back_by_leads_from_asset_events(
    states: States, counted: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    watcher = watcher_of(states, ("won",))
    changes = [states.change("kept", 3, "won"), states.change("b", 4, "won"), states.change("a", 4, "won")]
    end = states.state(("won",), (4, ("a", "b")), {}).cursor
    with caplog.at_level(logging.INFO, logger="test.watcher"):
        event = watcher.absorb(Changes(watcher.state.cursor, end, tuple(changes), True))

    assert event is not None
    payload = event.payload
    assert (payload["kind"], payload["version"], payload["statuses"]) == (LEADS_EVENT_KIND, 1, ["won"])
    assert [lead["id"] for lead in leads_from_asset_events([{"extra": {"payload": payload}}])] == ["a", "b"]
    assert caplog.messages == ["2 Octanist lead(s) entered won: a (won), b (won)."]
    assert counted == {"octanist.event_trigger.leads_reported": 2}
    assert watcher.state.cursor == end


def test_a_poll_without_entries_moves_the_watcher_and_emits_nothing(
    states: States, counted: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    watcher = watcher_of(states, ("won",))
    end = states.state(("won",), (9, ()), {}).cursor
    with caplog.at_level(logging.INFO, logger="test.watcher"):
        event = watcher.absorb(Changes(watcher.state.cursor, end, (states.change("c", 2, "open"),), True))

    assert event is None
    assert caplog.messages == []
    assert counted == {}
    assert watcher.state.cursor == end
