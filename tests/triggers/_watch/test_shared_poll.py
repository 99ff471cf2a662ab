"""
The shared poll's side of Airflow's ack channel, directly: a watcher's state is written only up
to the newest segment whose events every watcher had confirmed stored, and a failed write is retried.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist.triggers._feed.changes import Changes
from airflow_provider_octanist.triggers._watch import shared_poll_support, state_slot, watch_state
from triggers.conftest import MemoryStore

pytestmark = pytest.mark.skipif(
    not shared_poll_support.ack_streams_supported(),
    reason="This Airflow has no shared-stream ack channel (Airflow 3.3.2+); watchers poll on their own.",
)


def test_a_shared_watchers_state_is_written_only_for_segments_every_watcher_confirmed() -> None:
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    from airflow_provider_octanist.triggers._watch import shared_poll

    key = shared_poll_support.shared_key("octanist_default", 1.0)
    store = MemoryStore()
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    state = watch_state.WatchState.fresh(("won",), timedelta(days=90), start)
    member = shared_poll._Member(state, state_slot.StateSlot(store, "k"), None, shared_poll.log)
    poll = shared_poll.SharedLeadPoll(key, "octanist_default", 1.0)

    def segment(seq: int) -> shared_poll.Segment:
        at = start + timedelta(minutes=seq)
        state.advance_to(Cursor(at, frozenset({f"lead_{seq}"})))
        empty = Changes(Cursor(start), Cursor(at), (), True)
        return shared_poll.Segment(poll.token, seq, empty)

    def written_up_to() -> str | None:
        return store.values["k"]["cursor"]["ids"][0] if "k" in store.values else None

    def confirmed(seq: int) -> Any:
        return AdvanceItem(seq, AdvanceOutcome(acked=2, failed=0))

    def failed(seq: int) -> Any:
        return AdvanceItem(seq, AdvanceOutcome(acked=1, failed=1))

    async def scenario() -> None:
        watchers = shared_poll._watchers(key)
        watchers.members.append(member)
        try:
            for seq in (1, 2, 3):
                member.stage(segment(seq))
            await poll.advance([confirmed(1), failed(2)])
            assert written_up_to() == "lead_1"  # segment 2 was not stored for every watcher
            store.fail_writes = 1
            await poll.advance([confirmed(3)])
            assert written_up_to() == "lead_1"  # the write failed ...
            await member.retry_unsaved()
            assert written_up_to() == "lead_3"  # ... and is retried (before the next poll)
            await poll.advance([failed(4)])
            assert written_up_to() == "lead_3"
        finally:
            watchers.members.remove(member)
            shared_poll._release(key)
            await poll.aclose()

    asyncio.run(scenario())
