"""
OctanistLeadEventTrigger against the fake Octanist API: paging, de-duplication, state, errors, sharing.

The trigger's ``run()`` (and, for shared polls, ``filter_shared_stream``) is driven directly, the way
the triggerer drives it, with poll intervals of a few hundredths of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sys
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.events import LEADS_EVENT_KIND, leads_from_asset_events
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.triggers._feed import changes, lead_source
from airflow_provider_octanist.triggers._watch import shared_poll_support
from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger
from triggers.conftest import MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_octanist.testing import FakeOctanistServer

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

pytestmark = pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS,
    reason="Event-driven scheduling (AssetWatcher, BaseEventTrigger) needs Airflow 3.0+; this is Airflow 2.",
)

POLL = 0.03
LONG_AGO = "2026-01-01T00:00:00.000Z"
"""Leads are created with this timestamp so they are older than any watcher's start point."""


@pytest.fixture
def server(octanist_server: FakeOctanistServer, octanist_conn: str) -> FakeOctanistServer:
    """The fake API, with ``octanist_default`` pointing at it (fast hook retries)."""
    return octanist_server


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait of the watcher loops, recorded; the loops still yield to the event loop briefly."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)
        await asyncio.sleep(min(seconds, POLL))

    monkeypatch.setattr(lead_source, "sleep", record)
    return recorded


def trigger(**kwargs: Any) -> OctanistLeadEventTrigger:
    kwargs.setdefault("poll_interval", POLL)
    return OctanistLeadEventTrigger(**kwargs)


class Watching:
    """A running trigger, driven like the triggerer does: one ``__anext__`` in flight at a time."""

    def __init__(self, t: OctanistLeadEventTrigger, server: FakeOctanistServer, store: Any = None) -> None:
        t.asset_state_store = store
        self.events = t.run()
        self.server = server
        self._pending: asyncio.Future[Any] | None = None

    def _next(self) -> asyncio.Future[Any]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.events.__anext__())
        return self._pending

    def polls(self) -> int:
        """
        List requests of polls so far: not the one-off start of a watcher (reading the server's
        clock asks for one lead; seeding its memory filters by status).
        """
        return sum(
            1
            for r in self.server.requests
            if r.path == "/api/leads" and "status" not in r.query and r.query.get("limit") != ["1"]
        )

    async def start(self) -> Watching:
        """Run the watcher until its first poll (its start point is then fixed)."""
        before = self.polls()
        self._next()
        await until(lambda: self.polls() > before, "the first poll")
        return self

    async def event(self, timeout: float = 5.0) -> Any:
        """The next event (failing the test if none comes in time)."""
        event = await asyncio.wait_for(asyncio.shield(self._next()), timeout)
        self._pending = None
        assert event.payload["kind"] == LEADS_EVENT_KIND
        assert event.payload["leads"], "an event without leads was fired"
        return event

    async def leads(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        return list((await self.event(timeout)).payload["leads"])

    async def quiet(self, polls: int = 3) -> None:
        """Let the watcher poll a few more times and check it fires nothing."""
        pending = self._next()
        target = self.polls() + polls
        await until(lambda: self.polls() >= target or pending.done(), "more polls")
        assert not pending.done(), f"unexpected event: {pending.result().payload}"

    async def stop(self) -> None:
        """Cancel the trigger the way the triggerer does (the loop is inside ``__anext__``)."""
        pending = self._next()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def logged(capsys: pytest.CaptureFixture[str], level: str) -> str:
    """The log lines of ``level`` the test printed (Airflow 3 logs through structlog to stdout)."""
    captured = capsys.readouterr()
    return "\n".join(
        line
        for line in (captured.out + captured.err).splitlines()
        if f"[{level}" in line or f"{level.upper()} " in line
    )


def ids(leads: list[dict[str, Any]]) -> list[str]:
    return [lead["id"] for lead in leads]


# ----------------------------------------------------------------------------------------------
# Arguments and serialization
# ----------------------------------------------------------------------------------------------


def test_serialize_round_trips_with_plain_json_and_no_secret() -> None:
    t = OctanistLeadEventTrigger(
        statuses=["WON", "lost", "win"],
        octanist_conn_id="octanist_sales",
        poll_interval=30,
        updated_since=datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc),
        remember_for=timedelta(days=30),
    )
    classpath, kwargs = t.serialize()
    assert classpath == "airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger"
    assert kwargs == {
        "statuses": ["won", "lost"],
        "octanist_conn_id": "octanist_sales",
        "poll_interval": 30.0,
        "updated_since": "2026-03-01T12:00:00.000Z",
        "remember_for": 2592000.0,
    }
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert OctanistLeadEventTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_equal_watchers_hash_equal_and_nothing_time_dependent_is_in_the_kwargs() -> None:
    from airflow.triggers.base import BaseEventTrigger

    first = OctanistLeadEventTrigger(statuses=("lost", "won"), poll_interval=60)
    second = OctanistLeadEventTrigger(statuses=["won", "LOST"], poll_interval=60.0)
    assert first.serialize() == second.serialize()
    assert first.serialize()[1]["updated_since"] is None
    assert BaseEventTrigger.hash(*first.serialize()) == BaseEventTrigger.hash(*second.serialize())
    assert BaseEventTrigger.hash(*first.serialize()) != BaseEventTrigger.hash(
        *OctanistLeadEventTrigger(statuses="won", poll_interval=60).serialize()
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"statuses": "closed"}, "Unknown lead status"),
        ({"statuses": []}, "At least one lead status"),
        ({"octanist_conn_id": " "}, "octanist_conn_id"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": True}, "poll_interval"),
        ({"poll_interval": math.inf}, "poll_interval"),
        ({"remember_for": -1}, "remember_for"),
        ({"updated_since": "yesterday-ish"}, "updated_since"),
    ],
)
def test_invalid_arguments_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OctanistLeadEventTrigger(**kwargs)


def test_state_key_names_the_watcher_but_not_its_poll_interval() -> None:
    def key(**kwargs: Any) -> str:
        return OctanistLeadEventTrigger(**kwargs)._config().state_key

    assert key() == key(poll_interval=5)
    assert key() != key(statuses=("won", "lost"))
    assert key() != key(octanist_conn_id="octanist_other")
    assert key() != key(updated_since="2026-01-01T00:00:00Z")
    assert key().startswith("octanist.lead_events/octanist_default/won/")


# ----------------------------------------------------------------------------------------------
# What is reported
# ----------------------------------------------------------------------------------------------


def test_each_entry_into_won_is_reported_once_with_the_lead_fields(server: FakeOctanistServer) -> None:
    a, b = server.add_leads(2, name="Ada", email="ada@example.com", createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        server.set_status(a["id"], "qualified", value=10)
        server.set_status(a["id"], "won", value=1200)
        event = await watcher.event()
        (lead,) = event.payload["leads"]
        assert lead["id"] == a["id"]
        assert lead["status"] == "won"
        assert lead["value"] == 1200
        assert lead["previousStatus"] is None
        assert lead["email"] == "ada@example.com"
        assert lead["updatedAt"] == server.lead(a["id"])["updatedAt"]
        assert event.payload["statuses"] == ["won"]
        assert event.payload["version"] == 1

        server.update_lead(a["id"], note="invoice sent")  # an edit while won: no entry
        server.set_status(b["id"], "qualified", value=5)  # not a watched status
        await watcher.quiet()

        server.set_status(a["id"], "lost", loss_reason="went silent")
        await watcher.quiet()
        server.set_status(a["id"], "won", value=900)  # left and came back: a new entry
        assert ids(await watcher.leads()) == [a["id"]]
        await watcher.stop()

    asyncio.run(scenario())


def test_a_huge_lead_id_is_capped_in_the_watchers_log_lines(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = "L" * 1_000_000

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        # Dated in the future too: the line that says so names the lead as well.
        server.add_lead(id=huge, status="won", updatedAt=datetime.now(timezone.utc) + timedelta(hours=1))
        assert ids(await watcher.leads()) == [huge], "the event carries the lead whole: it is the data"
        await watcher.stop()

    asyncio.run(scenario())
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    naming = [line for line in lines if f"{'L' * 99}\u2026" in line]
    assert any("entered won" in line for line in naming), lines
    assert any("after the server's clock" in line for line in naming), lines
    assert max(map(len, lines)) < 2_000, "no line quotes the id whole"


def test_two_leads_won_at_the_same_millisecond_arrive_in_one_event(server: FakeOctanistServer) -> None:
    a, b, c = server.add_leads(3, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        at = datetime.now(timezone.utc) + timedelta(seconds=1)
        server.set_status(b["id"], "won", value=2, at=at)
        server.set_status(a["id"], "won", value=1, at=at)
        server.set_status(c["id"], "won", value=3)
        assert sorted(ids(await watcher.leads())) == sorted([a["id"], b["id"], c["id"]])
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


def test_watching_several_statuses_reports_moves_between_them(server: FakeOctanistServer) -> None:
    (a,) = server.add_leads(1, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(statuses=("won", "lost")), server).start()
        server.set_status(a["id"], "won", value=10)
        assert [lead["previousStatus"] for lead in await watcher.leads()] == [None]
        server.set_status(a["id"], "lost", loss_reason="refund")
        (lead,) = await watcher.leads()
        assert (lead["status"], lead["previousStatus"], lead["lossReason"]) == ("lost", "won", "refund")
        await watcher.stop()

    asyncio.run(scenario())


def test_a_lead_changed_twice_between_polls_is_seen_once_in_its_latest_state(
    server: FakeOctanistServer,
) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        server.set_status(a["id"], "won", value=10)
        server.set_status(a["id"], "won", value=12)  # corrected right away
        server.set_status(b["id"], "won", value=1)
        server.set_status(b["id"], "lost")  # won and lost again before the poll: never seen won
        (lead,) = await watcher.leads()
        assert (lead["id"], lead["value"]) == (a["id"], 12)
        await watcher.stop()

    asyncio.run(scenario())


def test_default_start_ignores_the_past_and_edits_of_leads_won_before(server: FakeOctanistServer) -> None:
    already_won = server.add_lead(
        status="won", value=50, createdAt=LONG_AGO, updatedAt="2026-02-01T00:00:00Z"
    )
    fresh = server.add_lead(createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(remember_for=timedelta(days=3650)), server).start()
        server.update_lead(already_won["id"], note="upsell call")  # won before the watcher existed
        server.set_status(fresh["id"], "won", value=5)
        assert ids(await watcher.leads()) == [fresh["id"]]
        await watcher.stop()

    asyncio.run(scenario())


def test_updated_since_reports_entries_after_it_and_none_before(server: FakeOctanistServer) -> None:
    server.add_lead(status="won", value=1, createdAt=LONG_AGO, updatedAt="2026-02-01T00:00:00Z")
    after = server.add_lead(status="won", value=2, createdAt=LONG_AGO, updatedAt="2026-03-05T00:00:00Z")

    async def scenario() -> None:
        watcher = Watching(trigger(updated_since="2026-03-01T00:00:00Z"), server)
        assert ids(await watcher.leads()) == [after["id"]]
        await watcher.stop()

    asyncio.run(scenario())


def test_a_lead_not_seen_for_remember_for_is_forgotten(server: FakeOctanistServer) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)
    server.set_status(a["id"], "won", value=1, at="2026-03-01T00:00:00Z")

    async def scenario() -> None:
        watcher = Watching(
            trigger(updated_since="2026-02-01T00:00:00Z", remember_for=timedelta(days=1)), server
        )
        assert ids(await watcher.leads()) == [a["id"]]
        server.set_status(b["id"], "qualified", value=1, at="2026-03-05T00:00:00Z")  # 4 days on
        await watcher.quiet()
        server.update_lead(a["id"], note="edited long after", at="2026-03-06T00:00:00Z")
        # Forgotten after a day, so its edit counts as an entry again (the documented edge).
        assert ids(await watcher.leads()) == [a["id"]]
        await watcher.stop()

    asyncio.run(scenario())


# ----------------------------------------------------------------------------------------------
# Paging and cost
# ----------------------------------------------------------------------------------------------


def test_hundreds_of_changes_cost_one_request_per_hundred_and_none_is_doubled(
    server: FakeOctanistServer,
) -> None:
    leads = server.add_leads(260, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(poll_interval=0.3), server).start()
        await watcher.quiet(polls=1)
        before = watcher.polls()
        with server.at_once():
            for lead in leads[:250]:
                server.set_status(lead["id"], "won", value=1)
        reported = await watcher.leads()
        assert sorted(ids(reported)) == sorted(lead["id"] for lead in leads[:250])
        assert watcher.polls() - before <= math.ceil(250 / 100) + 1
        await watcher.stop()

    asyncio.run(scenario())


def test_more_than_a_page_of_leads_in_one_millisecond_is_read_completely(
    server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    leads = server.add_leads(230, createdAt=LONG_AGO)
    monkeypatch.setattr(changes, "LATE_COMMITS", timedelta(0))  # the millisecond settles as it ends

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        at = datetime.now(timezone.utc) + timedelta(seconds=1)
        with server.at_once():  # a poll in flight must not see only the first few dozen
            for lead in leads:
                server.set_status(lead["id"], "won", value=1, at=at)
        reported = await watcher.leads()
        assert len(reported) == 230
        assert sorted(ids(reported)) == sorted(lead["id"] for lead in leads)
        # Once no lead can be committed in that millisecond any more, polls cost one request each.
        await until(lambda: server.now() > at + timedelta(milliseconds=50), "the millisecond to settle")
        await watcher.quiet(polls=1)
        before = watcher.polls()
        await watcher.quiet(polls=3)
        assert watcher.polls() - before == 3
        await watcher.stop()

    asyncio.run(scenario())


def test_a_poll_reads_a_crowded_millisecond_again_while_a_lead_may_still_be_committed_in_it(
    server: FakeOctanistServer,
) -> None:
    crowd, late = server.add_leads(150, createdAt=LONG_AGO), server.add_lead(createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        at = datetime.now(timezone.utc) + timedelta(milliseconds=200)
        with server.at_once():
            for lead in crowd:
                server.set_status(lead["id"], "won", value=1, at=at)
        assert len(await watcher.leads()) == 150
        server.set_status(late["id"], "won", value=1, at=at)  # committed late, in the same millisecond
        assert ids(await watcher.leads()) == [late["id"]]
        await watcher.stop()

    asyncio.run(scenario())


def test_nothing_changed_costs_exactly_one_request_per_poll(
    server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_leads(30, createdAt=LONG_AGO)
    watcher = Watching(trigger(), server)
    # The request count is read inside the watcher's own wait, so no scheduling delay of the test
    # can move a request into the wrong interval.
    requests_at_wait: list[int] = []

    async def record(seconds: float) -> None:
        requests_at_wait.append(watcher.polls())
        await asyncio.sleep(min(seconds, POLL))

    monkeypatch.setattr(lead_source, "sleep", record)

    async def scenario() -> None:
        await watcher.start()
        await until(lambda: len(requests_at_wait) >= 8, "eight polls")
        await watcher.stop()

    asyncio.run(scenario())
    per_poll = [b - a for a, b in itertools.pairwise(requests_at_wait[:8])]
    assert per_poll == [1] * 7


# ----------------------------------------------------------------------------------------------
# State: the watermark in the asset state store
# ----------------------------------------------------------------------------------------------


def test_start_point_is_saved_before_the_first_poll(server: FakeOctanistServer) -> None:
    store = MemoryStore()

    async def scenario() -> None:
        watcher = await Watching(trigger(), server, store).start()
        state = store.only()
        assert state["cursor"]["ids"] == []
        assert state["start"] == state["cursor"]["updatedAt"]
        await watcher.stop()

    asyncio.run(scenario())
    assert len(store.writes) == 1


def test_state_is_saved_one_poll_after_the_event_and_a_restart_resumes_from_it(
    server: FakeOctanistServer,
) -> None:
    a, b, c = server.add_leads(3, createdAt=LONG_AGO)
    store = MemoryStore()

    async def scenario() -> None:
        watcher = await Watching(trigger(poll_interval=0.2), server, store).start()
        server.set_status(a["id"], "won", value=1)
        await watcher.event()
        assert store.only()["memory"] == {}, "saved before Airflow could have stored the event"
        watcher._next()  # the triggerer asks for more: one poll interval later the state is saved
        await until(lambda: a["id"] in store.only()["memory"], "the state after the event")
        assert store.only()["cursor"]["ids"] == [a["id"]]
        await watcher.stop()

        server.set_status(b["id"], "won", value=2)  # while no triggerer runs
        restarted = Watching(trigger(poll_interval=0.2), server, store)
        assert ids(await restarted.leads()) == [b["id"]]
        server.update_lead(a["id"], note="edited after the restart")  # remembered: not an entry
        server.set_status(c["id"], "won", value=3)
        assert ids(await restarted.leads()) == [c["id"]]
        await restarted.stop()

    asyncio.run(scenario())


def test_a_crash_before_the_state_is_saved_repeats_the_event_rather_than_losing_it(
    server: FakeOctanistServer,
) -> None:
    (a,) = server.add_leads(1, createdAt=LONG_AGO)
    store = MemoryStore()

    async def scenario() -> None:
        watcher = await Watching(trigger(poll_interval=0.5), server, store).start()
        server.set_status(a["id"], "won", value=1)
        await watcher.event()
        await watcher.stop()  # the triggerer dies right after handing over the event
        again = Watching(trigger(poll_interval=0.5), server, store)
        assert ids(await again.leads()) == [a["id"]]
        await again.stop()

    asyncio.run(scenario())


def test_an_unreadable_stored_state_starts_again_from_the_start_point(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (a,) = server.add_leads(1, createdAt=LONG_AGO)
    store = MemoryStore()
    t = trigger()
    store.values[t._config().state_key] = {"version": 99}

    async def scenario() -> None:
        watcher = await Watching(t, server, store).start()
        server.set_status(a["id"], "won", value=1)
        assert ids(await watcher.leads()) == [a["id"]]
        await watcher.stop()

    asyncio.run(scenario())
    assert "unreadable" in logged(capsys, "error")
    assert store.only()["version"] == 1


def test_a_failed_state_write_is_retried_before_the_next_poll(server: FakeOctanistServer) -> None:
    (a,) = server.add_leads(1, createdAt=LONG_AGO)
    store = MemoryStore()

    async def scenario() -> None:
        watcher = await Watching(trigger(), server, store).start()
        store.fail_writes = 2
        server.set_status(a["id"], "won", value=1)
        await watcher.event()
        watcher._next()
        await until(lambda: a["id"] in store.only()["memory"], "the state, written on a later poll")
        await watcher.stop()

    asyncio.run(scenario())


@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_3_PLUS,
    reason="The asset state store (AssetStateStoreAccessors) arrived in Airflow 3.3.",
)
def test_a_trigger_watching_two_assets_keeps_its_state_in_both(
    server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import Asset
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import (
        AssetStateStoreResult,
        ErrorResponse,
        GetAssetStateStoreByName,
        SetAssetStateStoreByName,
    )
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors

    class SupervisorComms:
        """The triggerer's side of the asset state store messages, kept in a dict."""

        def __init__(self) -> None:
            self.values: dict[tuple[str, str], Any] = {}

        async def asend(self, msg: Any) -> Any:
            if isinstance(msg, SetAssetStateStoreByName):
                self.values[(msg.name, msg.key)] = msg.value
                return None
            assert isinstance(msg, GetAssetStateStoreByName)
            if (msg.name, msg.key) in self.values:
                return AssetStateStoreResult(value=self.values[(msg.name, msg.key)])
            return ErrorResponse(error=ErrorType.ASSET_STORE_NOT_FOUND)

    comms = SupervisorComms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    store = AssetStateStoreAccessors(inlets=[Asset("leads_won"), Asset("revenue")])
    (a,) = server.add_leads(1, createdAt=LONG_AGO)

    def remembered() -> bool:
        return len(comms.values) == 2 and all(a["id"] in v["memory"] for v in comms.values.values())

    async def scenario() -> None:
        watcher = await Watching(trigger(), server, store).start()
        server.set_status(a["id"], "won", value=1)
        await watcher.event()
        watcher._next()
        await until(remembered, "the state in both assets")
        await watcher.stop()

    asyncio.run(scenario())
    assert {name for name, _ in comms.values} == {"leads_won", "revenue"}


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------


def test_server_errors_back_off_exponentially_and_the_watcher_recovers(
    server: FakeOctanistServer,
    waits: list[float],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (a,) = server.add_leads(1, createdAt=LONG_AGO)
    backoffs: list[float] = []
    pause_after = lead_source.LeadSource.pause_after

    def recorded(self: lead_source.LeadSource, exc: BaseException, doing: str) -> float:
        backoffs.append(pause_after(self, exc, doing))
        return backoffs[-1]

    monkeypatch.setattr(lead_source.LeadSource, "pause_after", recorded)

    async def scenario() -> None:
        watcher = await Watching(trigger(poll_interval=1.0), server).start()
        # Two whole polls fail (the hook retries each request 3 times itself first).
        server.inject("status", status=503, count=8, method="GET", path="/api/leads")
        server.set_status(a["id"], "won", value=1)
        assert ids(await watcher.leads(timeout=10)) == [a["id"]]
        await watcher.stop()

    asyncio.run(scenario())
    failed = [
        line for line in logged(capsys, "warning").splitlines() if "could not list lead changes" in line
    ]
    assert len(failed) == 2
    assert "503" in failed[0]
    assert len(backoffs) == 2
    assert 0.5 <= backoffs[0] <= 1.0 <= backoffs[1] <= 2.0  # doubling from the poll interval, jittered
    assert all(backoff in waits for backoff in backoffs)


def test_a_rejected_key_is_a_warning_each_time_retried_slowly_with_a_fresh_connection(
    server: FakeOctanistServer,
    waits: list[float],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (a,) = server.add_leads(1, createdAt=LONG_AGO)
    closed: list[OctanistAsyncHook] = []
    real_aclose = OctanistAsyncHook.aclose

    async def aclose(self: OctanistAsyncHook) -> None:
        closed.append(self)
        await real_aclose(self)

    monkeypatch.setattr(OctanistAsyncHook, "aclose", aclose)

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        server.inject("status", status=401, count=2, method="GET", path="/api/leads")
        server.set_status(a["id"], "won", value=1)
        assert ids(await watcher.leads(timeout=10)) == [a["id"]]
        await watcher.stop()

    asyncio.run(scenario())
    assert waits.count(lead_source.SLOW_RETRY_SECONDS) == 2
    # Each attempt is a warning; two failed polls are not yet "blind" (see the health tests).
    warnings = logged(capsys, "warning")
    assert warnings.count("rejected the API key of connection 'octanist_default'") == 2
    assert server.api_key not in warnings
    assert len({id(hook) for hook in closed}) == 3  # two hooks given up on, and the one in use at the end


def test_the_hook_is_closed_when_the_trigger_is_cancelled(
    server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[OctanistAsyncHook] = []
    real_aclose = OctanistAsyncHook.aclose

    async def aclose(self: OctanistAsyncHook) -> None:
        closed.append(self)
        await real_aclose(self)

    monkeypatch.setattr(OctanistAsyncHook, "aclose", aclose)

    async def scenario() -> None:
        watcher = await Watching(trigger(), server).start()
        await watcher.stop()

    asyncio.run(scenario())
    assert len(closed) == 1


# ----------------------------------------------------------------------------------------------
# Shared polls (Airflow 3.3.2+: shared streams with the ack channel)
# ----------------------------------------------------------------------------------------------

shared_streams = pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not shared_poll_support.ack_streams_supported(),
    reason="This Airflow has no shared-stream ack channel (Airflow 3.3.2+); watchers poll on their own.",
)


class Triggerer:
    """
    The part of Airflow's trigger runner that drives shared-stream triggers, with persistence by hand.

    As in ``TriggerRunner.run_trigger``: subscribe, run ``filter_shared_stream``, bind each event to
    its segment; ``persist()`` plays the supervisor storing the events and confirming them.
    """

    def __init__(self) -> None:
        from airflow.triggers.shared_stream import SharedStreamManager

        self.manager = SharedStreamManager(ack_timeout=30)
        self.events: list[tuple[int, Any, int | None]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self._stored = 0

    def start(self, trigger_id: int, t: OctanistLeadEventTrigger, store: Any) -> None:
        t.asset_state_store = store
        key = t.shared_stream_key()
        assert key is not None

        async def run() -> None:
            stream = self.manager.subscribe(trigger_id=trigger_id, trigger=t, key=key)
            try:
                async for event in t.filter_shared_stream(stream):
                    seq = self.manager.bind_pending_event(trigger_id=trigger_id, key=key)
                    self.events.append((trigger_id, event, seq))
            finally:
                await self.manager.unsubscribe(trigger_id, key)

        self.tasks.append(asyncio.ensure_future(run()))

    def leads_of(self, trigger_id: int) -> list[str]:
        return [
            lead["id"]
            for tid, event, _ in self.events
            if tid == trigger_id
            for lead in event.payload["leads"]
        ]

    def persist(self) -> None:
        seqs = [seq for _, _, seq in self.events[self._stored :] if seq is not None]
        self._stored = len(self.events)
        self.manager.confirm_persisted(seqs)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.manager.stop_all()


@shared_streams
def test_watchers_of_one_connection_share_one_poll_and_filter_their_own_statuses(
    server: FakeOctanistServer, counted: dict[str, int]
) -> None:
    a, b, c = server.add_leads(3, createdAt=LONG_AGO)
    won_store, lost_store = MemoryStore(), MemoryStore()

    async def scenario() -> None:
        triggerer = Triggerer()
        triggerer.start(1, trigger(statuses="won"), won_store)
        triggerer.start(2, trigger(statuses=("lost",)), lost_store)
        await until(lambda: len(won_store.writes) == len(lost_store.writes) == 1, "both watchers started")
        await until(lambda: counted.get("octanist.shared_poll.polls", 0) >= 10, "ten shared polls")
        alone = counted.get("octanist.event_trigger.polls", 0)
        assert alone == 0, f"{alone} poll(s) of a watcher polling on its own, beside the shared poll"

        server.set_status(a["id"], "won", value=1)
        server.set_status(b["id"], "lost", loss_reason="price")
        server.set_status(c["id"], "qualified", value=2)
        await until(lambda: len(triggerer.events) == 2, "one event per watcher")
        assert triggerer.leads_of(1) == [a["id"]]
        assert triggerer.leads_of(2) == [b["id"]]
        await asyncio.sleep(POLL * 3)
        assert won_store.only()["memory"] == {}, "state saved before the event was stored"
        triggerer.persist()
        await until(lambda: a["id"] in won_store.only()["memory"], "the won watcher's state")
        await until(lambda: b["id"] in lost_store.only()["memory"], "the lost watcher's state")
        await triggerer.stop()

    asyncio.run(scenario())


@shared_streams
def test_a_watcher_joining_with_an_older_position_is_caught_up_by_the_shared_poll(
    server: FakeOctanistServer,
) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)
    old_store, new_store = MemoryStore(), MemoryStore()

    async def scenario() -> None:
        triggerer = Triggerer()
        triggerer.start(1, trigger(statuses="won"), new_store)
        await until(lambda: len(new_store.writes) == 1, "the first watcher")
        server.set_status(a["id"], "won", value=1)
        await until(lambda: triggerer.leads_of(1) == [a["id"]], "the first watcher's event")
        # A second watcher of the same poll resumes from a start point before that change.
        triggerer.start(2, trigger(statuses="won", updated_since=LONG_AGO), old_store)
        await until(lambda: triggerer.leads_of(2) == [a["id"]], "the catch-up of the second watcher")
        server.set_status(b["id"], "won", value=2)
        await until(lambda: triggerer.leads_of(1) == [a["id"], b["id"]], "the next change, first watcher")
        await until(lambda: triggerer.leads_of(2) == [a["id"], b["id"]], "the next change, second watcher")
        await triggerer.stop()

    asyncio.run(scenario())


@shared_streams
def test_shared_watcher_resumes_from_its_saved_state_after_a_restart(server: FakeOctanistServer) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)
    store = MemoryStore()

    async def scenario() -> None:
        triggerer = Triggerer()
        triggerer.start(1, trigger(), store)
        await until(lambda: len(store.writes) == 1, "the watcher")
        server.set_status(a["id"], "won", value=1)
        await until(lambda: len(triggerer.events) == 1, "the event")
        triggerer.persist()
        await until(lambda: a["id"] in store.only()["memory"], "the saved state")
        await triggerer.stop()

        server.set_status(b["id"], "won", value=2)  # while the triggerer is down
        server.update_lead(a["id"], note="an edit, not an entry")
        again = Triggerer()
        again.start(7, trigger(), store)
        await until(lambda: len(again.events) == 1, "the event after the restart")
        assert again.leads_of(7) == [b["id"]]
        await asyncio.sleep(POLL * 5)
        assert len(again.events) == 1
        await again.stop()

    asyncio.run(scenario())


def test_leads_from_asset_events_reads_the_trigger_events_back(server: FakeOctanistServer) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)

    async def scenario() -> list[dict[str, Any]]:
        watcher = await Watching(trigger(), server).start()
        server.set_status(a["id"], "won", value=1)
        first = await watcher.event()
        server.set_status(b["id"], "won", value=2)
        second = await watcher.event()
        await watcher.stop()
        # What Airflow makes of them: asset events whose extra wraps the payload; one run may
        # receive several, and the same event may be reached twice (through an alias).
        extras = [{"from_trigger": True, "payload": e.payload} for e in (second, first, first)]
        return leads_from_asset_events([{"extra": extra} for extra in extras])

    assert ids(asyncio.run(scenario())) == [a["id"], b["id"]]


@pytest.fixture(autouse=True)
def _no_leftover_shared_watchers() -> Iterator[None]:
    yield
    # The shared poll exists only where Airflow shares streams: nothing to check where it never loaded.
    shared_poll = sys.modules.get("airflow_provider_octanist.triggers._watch.shared_poll")
    assert shared_poll is None or not shared_poll._WATCHERS, "a shared poll or watcher was left registered"
