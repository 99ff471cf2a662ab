"""
The change feed against the hostile answers of docs/hostile-answers.md, directly and through the trigger.

The feed must never trade a lead for silence: an ignored sort, a lead dated in the future, a
malformed lead, microsecond timestamps and repeating pages each get a pair of tests, the feed
directly and the trigger, named after the behaviour they pin (the sections follow the document).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist.exceptions import OctanistResponseError
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.testing import FakeOctanistServer
from airflow_provider_octanist.triggers._feed import lead_source
from airflow_provider_octanist.triggers._feed.changes import FUTURE_TOLERANCE, FeedNotes, fetch_changes
from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

if TYPE_CHECKING:
    from collections.abc import Iterator

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

pytestmark = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="The event trigger needs Airflow 3.0+.")

POLL = 0.03
LONG_AGO = datetime(2020, 1, 1, tzinfo=timezone.utc)
CONN_ENV = "AIRFLOW_CONN_OCTANIST_DEFAULT"


@pytest.fixture
def server(octanist_server: FakeOctanistServer, octanist_conn: str) -> FakeOctanistServer:
    return octanist_server


@contextlib.contextmanager
def _serving(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> Iterator[FakeOctanistServer]:
    """A fake API made with ``settings``, with ``octanist_default`` pointing at it."""
    with FakeOctanistServer(**settings) as fake:
        conn = json.loads(fake.connection_json)
        conn.setdefault("extra", {})
        if isinstance(conn["extra"], str):
            conn["extra"] = json.loads(conn["extra"])
        conn["extra"]["retry_backoff"] = 0.01
        monkeypatch.setenv(CONN_ENV, json.dumps(conn))
        yield fake


@pytest.fixture
def us_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOctanistServer]:
    """A fake API that writes (and filters by) microseconds."""
    with _serving(monkeypatch, timestamp_precision="us") as fake:
        yield fake


@pytest.fixture
def long_key_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOctanistServer]:
    """A fake API whose key is as long as a real one (40 characters)."""
    with _serving(monkeypatch, api_key="oct_live_" + "7f3a9c1e5b" * 3 + "d") as fake:
        yield fake


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    async def brief(seconds: float) -> None:
        await asyncio.sleep(min(seconds, POLL))

    monkeypatch.setattr(lead_source, "sleep", brief)


class Watching:
    """A running event trigger, driven as the triggerer drives it (one ``__anext__`` at a time)."""

    def __init__(self, trigger: OctanistLeadEventTrigger) -> None:
        trigger.asset_state_store = None
        self.events = trigger.run()
        self._pending: asyncio.Future[Any] | None = None

    def _next(self) -> asyncio.Future[Any]:
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.events.__anext__())
        return self._pending

    async def leads(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        event = await asyncio.wait_for(asyncio.shield(self._next()), timeout)
        self._pending = None
        return list(event.payload["leads"])

    async def collect(self, wanted: int, timeout: float = 10.0) -> list[str]:
        """Ids of every lead reported until ``wanted`` were (duplicates kept, to be counted)."""
        seen: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(set(seen)) < wanted:
            seen += [lead["id"] for lead in await self.leads(max(0.1, deadline - loop.time()))]
        return seen

    async def quiet(self, seconds: float = 0.3) -> None:
        pending = self._next()
        await asyncio.sleep(seconds)
        assert not pending.done(), f"unexpected event: {pending.result().payload}"

    async def stop(self) -> None:
        pending = self._next()
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending


async def started(server: FakeOctanistServer, **kwargs: Any) -> Watching:
    before = server.request_count("GET", "/api/leads")
    watching = Watching(OctanistLeadEventTrigger(poll_interval=POLL, **kwargs))
    watching._next()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while server.request_count("GET", "/api/leads") <= before + 2:  # the clock, seeding, a first poll
        assert loop.time() < deadline, "the watcher never polled"
        await asyncio.sleep(0.005)
    return watching


def stdout_of(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


async def changes_after(start: Cursor, notes: FeedNotes | None = None, **kwargs: Any) -> Any:
    async with OctanistAsyncHook() as hook:
        return await fetch_changes(hook, start, notes=notes, **kwargs)


# -- the list ignores sort ------------------------------------------------------------------------------


def test_an_ignored_sort_is_detected_and_the_window_read_whole(server: FakeOctanistServer) -> None:
    leads = server.add_leads(250, createdAt=LONG_AGO)
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    for n, lead in enumerate(reversed(leads)):  # updatedAt order is the reverse of insertion order
        server.set_status(lead["id"], "won", at=base + timedelta(milliseconds=n))
    server.inject("unsorted", count=None, method="GET", path="/api/leads")
    notes = FeedNotes()

    changes = asyncio.run(changes_after(Cursor(base - timedelta(seconds=1)), notes))

    assert notes.unsorted
    assert sorted(c.lead_id for c in changes.changes) == sorted(lead["id"] for lead in leads)
    assert [c.at for c in changes.changes] == sorted(c.at for c in changes.changes)
    assert changes.end.at == base + timedelta(milliseconds=249)


def test_the_event_trigger_under_an_ignored_sort_reports_every_lead_once_and_says_so_once(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    leads = server.add_leads(250, createdAt=LONG_AGO)
    server.inject("unsorted", count=None, method="GET", path="/api/leads")

    async def scenario() -> None:
        watcher = await started(server)
        for lead in reversed(leads):
            server.set_status(lead["id"], "won", value=1)
        reported = await watcher.collect(250)
        assert sorted(reported) == sorted(lead["id"] for lead in leads), "each lead once"
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())
    assert stdout_of(capsys).count("ignored sort=updatedAt:asc") == 1


# -- a lead dated in the future -------------------------------------------------------------------------


def test_a_lead_dated_in_the_future_is_listed_but_the_cursor_stays_by_the_servers_clock(
    server: FakeOctanistServer,
) -> None:
    future = server.add_lead(status="won", updatedAt=datetime.now(timezone.utc) + timedelta(hours=1))
    start = Cursor(datetime.now(timezone.utc) - timedelta(minutes=1))

    changes = asyncio.run(changes_after(start))

    assert [c.lead_id for c in changes.changes] == [future["id"]]
    assert changes.end == start
    assert changes.ceiling is not None
    assert changes.ceiling <= datetime.now(timezone.utc) + FUTURE_TOLERANCE


def test_the_event_trigger_reports_a_future_dated_lead_once_and_keeps_seeing_later_changes(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await started(server)
        server.set_status(a["id"], "won", value=1)
        assert [lead["id"] for lead in await watcher.leads()] == [a["id"]]
        future = server.add_lead(status="won", updatedAt=datetime.now(timezone.utc) + timedelta(hours=1))
        assert [lead["id"] for lead in await watcher.leads()] == [future["id"]]
        server.update_lead(a["id"], note="edited, still won")  # remembered: not a new entry
        server.set_status(b["id"], "won", value=2)
        assert [lead["id"] for lead in await watcher.leads()] == [b["id"]]
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())
    assert stdout_of(capsys).count("after the server's clock") == 1


# -- one malformed lead ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [{"id": 42}, {"status": None}])
def test_a_malformed_lead_is_skipped_logged_and_counted(
    server: FakeOctanistServer, fields: dict[str, Any]
) -> None:
    base = datetime.now(timezone.utc) - timedelta(minutes=1)
    leads = server.add_leads(3, updatedAt=base)
    server.inject("corrupt_lead", count=None, fields=fields, path="/api/leads")
    notes = FeedNotes()

    changes = asyncio.run(changes_after(Cursor(base - timedelta(seconds=1)), notes))

    assert len(changes.changes) == 2
    assert {c.lead_id for c in changes.changes} < {lead["id"] for lead in leads}
    assert changes.skipped == 1
    assert notes.skipped == 1


def test_the_event_trigger_keeps_reporting_leads_after_a_malformed_one(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = server.add_leads(3, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await started(server)
        server.inject("corrupt_lead", count=None, fields={"status": None}, path="/api/leads")
        server.set_status(a["id"], "won", value=1)  # the first lead of every answer: malformed
        server.set_status(b["id"], "won", value=2)
        assert b["id"] in await watcher.collect(1)
        server.clear_faults()
        server.set_status(c["id"], "won", value=3)
        assert c["id"] in await watcher.collect(1)
        await watcher.stop()

    asyncio.run(scenario())
    assert "Skipped a malformed Octanist lead" in stdout_of(capsys)


@pytest.mark.parametrize(
    ("corruption", "shown_from"),
    [
        ({"status": None}, "{'id': '{id}', 'name': '"),  # refused by the feed: the lead's repr, cut
        ({"id": 7}, "{'id': 7, 'name': '"),  # refused by the hook's lead check: str(lead), cut
    ],
    ids=["feed", "hook"],
)
def test_a_malformed_leads_log_line_holds_no_piece_of_an_echoed_key(
    long_key_server: FakeOctanistServer,
    capsys: pytest.CaptureFixture[str],
    corruption: dict[str, Any],
    shown_from: str,
) -> None:
    server, key = long_key_server, long_key_server.api_key
    lead = server.add_lead(createdAt=LONG_AGO)
    # The key starts 100 characters into the excerpt, so the excerpt's cut at 120 falls inside it.
    filler = "x" * (100 - len(shown_from.replace("{id}", lead["id"])))
    server.inject("corrupt_lead", count=None, fields={**corruption, "name": filler + key}, path="/api/leads")

    async def scenario() -> None:
        watcher = await started(server)
        server.set_status(lead["id"], "won", value=1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while "Skipped a malformed Octanist lead" not in (out := stdout_of(capsys)):
            assert loop.time() < deadline, f"no malformed-lead line was logged: {out[-2000:]}"
            await asyncio.sleep(0.01)
        await watcher.stop()
        logged = [line for line in out.splitlines() if "Skipped a malformed Octanist lead" in line]
        assert filler in logged[0], "the excerpt must reach the key for this test to mean anything"
        assert key[:6] not in out, f"a piece of the API key was logged: {logged[0]}"
        assert "***" in logged[0]

    asyncio.run(scenario())


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["NaN", "Infinity"])
def test_a_lead_holding_a_non_standard_number_is_skipped_not_its_page(
    server: FakeOctanistServer, value: float
) -> None:
    base = datetime.now(timezone.utc) - timedelta(minutes=1)
    leads = server.add_leads(3, updatedAt=base)
    server.inject("corrupt_lead", count=None, fields={"value": value}, path="/api/leads")
    notes = FeedNotes()

    changes = asyncio.run(changes_after(Cursor(base - timedelta(seconds=1)), notes))

    assert len(changes.changes) == 2  # the page's other leads, not a refused page
    assert {c.lead_id for c in changes.changes} < {lead["id"] for lead in leads}
    assert changes.skipped == 1
    assert notes.skipped == 1
    assert all(math.isfinite(c.lead["value"] or 0) for c in changes.changes)


def test_a_non_standard_number_outside_the_leads_still_refuses_the_page(
    server: FakeOctanistServer,
) -> None:
    server.add_leads(2)
    server.inject(
        "transform",
        count=None,
        path="/api/leads",
        function=lambda payload: json.dumps(payload).replace('"total": 2', '"total": NaN'),
    )

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            await hook.list_leads_page(1, skip_malformed=True)

    with pytest.raises(OctanistResponseError, match="non-standard number NaN"):
        asyncio.run(scenario())


# -- microsecond timestamps -----------------------------------------------------------------------------


def test_more_than_a_page_of_leads_on_one_microsecond_makes_progress(us_server: FakeOctanistServer) -> None:
    leads = us_server.add_leads(150, updatedAt="2026-01-01T00:00:00.123456Z")
    start = Cursor(datetime(2025, 12, 31, tzinfo=timezone.utc))

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            first = await fetch_changes(hook, start)
            assert sorted(c.lead_id for c in first.changes) == sorted(lead["id"] for lead in leads)
            assert first.end.at == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=timezone.utc)
            assert len(first.end.ids) == 150
            again = await fetch_changes(hook, first.end)
            assert again.changes == ()
            assert again.end == first.end

    asyncio.run(scenario())
    after = ["2026-01-01T00:00:00.123457Z"]  # what comes after, asked from the next microsecond
    assert any(r.query.get("updatedAt[gte]") == after for r in us_server.requests)


def test_the_event_trigger_reports_every_lead_of_a_crowded_microsecond(us_server: FakeOctanistServer) -> None:
    leads = us_server.add_leads(150, status="won", updatedAt="2026-01-01T00:00:00.123456Z")

    async def scenario() -> None:
        watcher = await started(us_server, updated_since="2025-12-31T00:00:00Z")
        reported = await watcher.collect(150)
        assert sorted(reported) == sorted(lead["id"] for lead in leads)
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


# -- pages that repeat ----------------------------------------------------------------------------------


def test_repeating_pages_stop_the_feed_early_with_a_clear_error(server: FakeOctanistServer) -> None:
    at = datetime.now(timezone.utc) - timedelta(minutes=1)
    server.add_leads(250, updatedAt=at)  # one instant: read by page number, where pages can repeat
    server.inject("repeat_pages", count=None, method="GET", path="/api/leads")

    with pytest.raises(OctanistResponseError, match="only leads of earlier pages"):
        asyncio.run(changes_after(Cursor(at - timedelta(seconds=1))))
    assert server.request_count("GET", "/api/leads") <= 4


def test_the_event_trigger_logs_repeating_pages_instead_of_looping(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        watcher = await started(server)
        at = datetime.now(timezone.utc)
        with server.at_once():
            for lead in server.add_leads(250, createdAt=LONG_AGO):
                server.set_status(lead["id"], "won", value=1, at=at)
        server.inject("repeat_pages", count=None, method="GET", path="/api/leads")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while "only leads of earlier pages" not in (out := stdout_of(capsys)):
            assert loop.time() < deadline, out[-2000:]
            await asyncio.sleep(0.01)
        await watcher.stop()

    asyncio.run(scenario())
    assert server.request_count("GET", "/api/leads") < 50


def test_a_full_page_without_one_readable_lead_is_an_error_not_silence(
    server: FakeOctanistServer,
) -> None:
    base = datetime.now(timezone.utc) - timedelta(minutes=1)
    server.add_leads(150, updatedAt=base)
    server.inject(
        "transform",
        count=1,
        path="/api/leads",
        function=lambda payload: {**payload, "data": [{**lead, "id": 42} for lead in payload["data"]]},
    )

    with pytest.raises(OctanistResponseError, match="full page without one readable lead"):
        asyncio.run(changes_after(Cursor(base - timedelta(seconds=1))))


# == a real deployment's habits =========================================================================


@pytest.fixture
def ms_printing_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOctanistServer]:
    """A fake API that stores (and filters by) microseconds but prints milliseconds."""
    with _serving(monkeypatch, timestamp_precision="us", printed_precision="ms") as fake:
        yield fake


class Said:
    """Stands in for a feed's logger: what it warned about, and what it logged as errors."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def warning(self, message: str, *args: Any) -> None:
        self.warnings.append(message % args)

    def error(self, message: str, *args: Any) -> None:
        self.errors.append(message % args)


# -- a crowded instant edited while it is paged ---------------------------------------------------------


def test_a_crowded_instant_edited_while_paged_is_read_whole(
    server: FakeOctanistServer,
) -> None:
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    leads = server.add_leads(150, updatedAt=at)
    first = min(lead["id"] for lead in leads)  # on page 1 of the instant (ties are ordered by id)
    # Page 2 of the instant is answered after a lead of page 1 moved on: page 2 shifts by one.
    server.change_during_listing(lambda: server.update_lead(first, note="edited"), page=2)

    changes = asyncio.run(changes_after(Cursor(at - timedelta(seconds=1))))

    at_the_instant = [c.lead_id for c in changes.changes if c.at == at]
    assert sorted(at_the_instant) == sorted(lead["id"] for lead in leads), "each of the 150 once"
    assert changes.end.at > at, "and the edit after it"


def test_the_event_trigger_reports_each_of_150_leads_won_at_one_instant_once(
    server: FakeOctanistServer,
) -> None:
    leads = server.add_leads(150, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await started(server)
        at = datetime.now(timezone.utc)
        first = min(lead["id"] for lead in leads)
        server.change_during_listing(lambda: server.update_lead(first, note="edited, still won"), page=2)
        with server.at_once():
            for lead in leads:
                server.set_status(lead["id"], "won", value=1, at=at)
        reported = await watcher.collect(150)
        assert sorted(reported) == sorted(lead["id"] for lead in leads), "each lead once"
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


# -- fewer leads per page than asked --------------------------------------------------------------------


def test_a_server_page_cap_is_read_by_what_the_answer_says(server: FakeOctanistServer) -> None:
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    leads = [server.add_lead(updatedAt=base + timedelta(milliseconds=n)) for n in range(120)]
    server.page_cap = 50

    changes = asyncio.run(changes_after(Cursor(base - timedelta(seconds=1))))

    assert [c.lead_id for c in changes.changes] == [lead["id"] for lead in leads]
    assert changes.complete
    assert server.request_count("GET", "/api/leads") >= 3, "every page of 50 was asked for"


def test_the_event_trigger_reports_a_bulk_and_later_wins_under_a_server_page_cap(
    server: FakeOctanistServer,
) -> None:
    bulk = server.add_leads(60, createdAt=LONG_AGO)
    (later,) = server.add_leads(1, createdAt=LONG_AGO)
    server.page_cap = 50

    async def scenario() -> None:
        watcher = await started(server)
        at = datetime.now(timezone.utc)
        with server.at_once():
            for lead in bulk:
                server.set_status(lead["id"], "won", value=1, at=at)
        reported = await watcher.collect(60)
        assert sorted(reported) == sorted(lead["id"] for lead in bulk)
        server.set_status(later["id"], "won", value=2)
        assert await watcher.collect(1) == [later["id"]]
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


# -- microseconds stored, milliseconds printed ----------------------------------------------------------


def test_milliseconds_printed_over_microseconds_stored_make_progress(
    ms_printing_server: FakeOctanistServer,
) -> None:
    server = ms_printing_server
    at = datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=timezone.utc)
    leads = [server.add_lead(updatedAt=at + timedelta(microseconds=n + 1)) for n in range(150)]

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            first = await fetch_changes(hook, Cursor(datetime(2025, 12, 31, tzinfo=timezone.utc)))
            assert sorted(c.lead_id for c in first.changes) == sorted(lead["id"] for lead in leads)
            assert first.end.at == at  # as printed
            again = await fetch_changes(hook, first.end)
            assert again.changes == ()
            assert again.end == first.end

    asyncio.run(scenario())
    after = ["2026-01-01T00:00:00.124Z"]  # "after T.123" asked as "from T.124", which every server means
    assert any(r.query.get("updatedAt[gte]") == after for r in server.requests)


def test_the_event_trigger_under_milliseconds_printed_over_microseconds_reports_each_lead_once(
    ms_printing_server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = ms_printing_server
    leads = server.add_leads(150, createdAt=LONG_AGO)
    (later,) = server.add_leads(1, createdAt=LONG_AGO)

    async def scenario() -> None:
        watcher = await started(server)
        now = datetime.now(timezone.utc)
        at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        with server.at_once():  # one bulk update: 150 microsecond stamps printed as one millisecond
            for n, lead in enumerate(leads):
                server.set_status(lead["id"], "won", value=1, at=at + timedelta(microseconds=n + 1))
        reported = await watcher.collect(150)
        assert sorted(reported) == sorted(lead["id"] for lead in leads)
        server.set_status(later["id"], "won", value=2)
        assert await watcher.collect(1) == [later["id"]]
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())
    assert "made no progress" not in stdout_of(capsys)


def test_a_server_printing_microseconds_steps_by_one_after_a_whole_millisecond(
    us_server: FakeOctanistServer,
) -> None:
    crowd = us_server.add_leads(150, updatedAt="2026-01-01T00:00:00.123000Z")
    (next_one,) = us_server.add_leads(1, updatedAt="2026-01-01T00:00:00.123001Z")

    changes = asyncio.run(changes_after(Cursor(datetime(2025, 12, 31, tzinfo=timezone.utc))))

    assert sorted(c.lead_id for c in changes.changes) == sorted(lead["id"] for lead in [*crowd, next_one])
    after = ["2026-01-01T00:00:00.123001Z"]  # not .124: this server prints (and stores) microseconds
    assert any(r.query.get("updatedAt[gte]") == after for r in us_server.requests)


# -- the event trigger's start point comes from the server's clock --------------------------------------


@pytest.mark.parametrize("minutes", [-10, 10], ids=["server-behind", "server-ahead"])
def test_a_watchers_start_point_is_the_servers_clock(server: FakeOctanistServer, minutes: int) -> None:
    before, after = server.add_leads(2, createdAt=LONG_AGO)
    server.clock_offset = timedelta(minutes=minutes)
    server.set_status(before["id"], "won", value=1)  # won just before the watcher existed

    async def scenario() -> None:
        watcher = await started(server)
        server.set_status(after["id"], "won", value=2)  # won after it started
        assert [lead["id"] for lead in await watcher.leads()] == [after["id"]]
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


# -- a lead once stamped in the future, then corrected --------------------------------------------------


def test_a_corrected_future_dated_leads_later_win_is_reported(server: FakeOctanistServer) -> None:
    async def scenario() -> None:
        watcher = await started(server)
        lead = server.add_lead(status="won", updatedAt=datetime.now(timezone.utc) + timedelta(hours=1))
        assert [entry["id"] for entry in await watcher.leads()] == [lead["id"]]
        server.update_lead(lead["id"], status="qualified")  # corrected: a real stamp, out of won
        await watcher.quiet()
        server.set_status(lead["id"], "won", value=3)  # its re-entry into won
        (entry,) = await watcher.leads()
        assert (entry["id"], entry["previousStatus"]) == (lead["id"], None)
        await watcher.stop()

    asyncio.run(scenario())


# -- a stale meta.timestamp -----------------------------------------------------------------------------


def test_a_stale_server_clock_is_not_used_and_said_once(server: FakeOctanistServer) -> None:
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    leads = [server.add_lead(updatedAt=base + timedelta(milliseconds=n)) for n in range(30)]
    server.stale_timestamp = "1970-01-01T00:00:00.000Z"
    said = Said()
    notes = FeedNotes(said)

    async def scenario() -> None:
        async with OctanistAsyncHook() as hook:
            changes = await fetch_changes(hook, Cursor(base - timedelta(seconds=1)), notes=notes)
            assert [c.lead_id for c in changes.changes] == [lead["id"] for lead in leads]
            assert changes.end.at == base + timedelta(milliseconds=29), "the position moves on"
            server.clear_requests()
            for _ in range(5):
                again = await fetch_changes(hook, changes.end, notes=notes)
                assert again.changes == ()
            assert server.request_count("GET", "/api/leads") == 5, "one request a poll, not a re-read"

    asyncio.run(scenario())
    stale = [line for line in said.errors if "1970-01-01T00:00:00.000Z" in line]
    assert len(stale) == 1, said.errors
    assert "cannot be the server's clock" in stale[0]


def test_the_event_trigger_under_a_stale_server_clock_reports_each_win_once(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = server.add_leads(2, createdAt=LONG_AGO)
    server.stale_timestamp = "1970-01-01T00:00:00.000Z"

    async def scenario() -> None:
        watcher = await started(server)
        server.set_status(a["id"], "won", value=1)
        assert await watcher.collect(1) == [a["id"]]
        server.set_status(b["id"], "won", value=2)
        assert await watcher.collect(1) == [b["id"]]
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())
    out = stdout_of(capsys)
    assert out.count("meta.timestamp 1970-01-01T00:00:00.000Z, which cannot be the server's clock") == 1
    assert "after the server's clock" not in out


# -- the server's quirks, one at a time: microseconds, [gte] as [gt], clocks hours off ------------------


@pytest.fixture
def us_stamps_ms_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOctanistServer]:
    """A fake API that stamps leads in microseconds but answers with a millisecond ``meta.timestamp``."""
    with _serving(monkeypatch, timestamp_precision="us") as fake:
        fake.clock_precision = "ms"
        yield fake


def test_microsecond_stamps_under_a_millisecond_clock_lose_no_lead_at_a_page_boundary(
    us_stamps_ms_clock: FakeOctanistServer,
) -> None:
    base = datetime(2026, 1, 1, 0, 0, 0, 100, tzinfo=timezone.utc)
    leads = [us_stamps_ms_clock.add_lead(updatedAt=base + timedelta(microseconds=37 * n)) for n in range(250)]

    async def scenario() -> None:
        changes = await changes_after(Cursor(base - timedelta(seconds=1)))
        assert [c.lead_id for c in changes.changes] == [lead["id"] for lead in leads]

    asyncio.run(scenario())
    bounds = [
        r.query["updatedAt[gte]"][0] for r in us_stamps_ms_clock.requests if "updatedAt[gte]" in r.query
    ]
    assert any(len(bound) == len("2026-01-01T00:00:00.000000Z") for bound in bounds), "asked in microseconds"


def test_more_than_a_page_on_one_microsecond_under_a_millisecond_clock_is_read_whole(
    us_stamps_ms_clock: FakeOctanistServer,
) -> None:
    leads = us_stamps_ms_clock.add_leads(150, updatedAt="2026-01-01T00:00:00.123456Z")

    async def scenario() -> None:
        first = await changes_after(Cursor(datetime(2025, 12, 31, tzinfo=timezone.utc)))
        assert sorted(c.lead_id for c in first.changes) == sorted(lead["id"] for lead in leads)
        assert len(first.end.ids) == 150

    asyncio.run(scenario())


def test_the_event_trigger_reports_every_lead_won_microseconds_apart_under_a_millisecond_clock(
    us_stamps_ms_clock: FakeOctanistServer,
) -> None:
    base = datetime.now(timezone.utc) - timedelta(minutes=1)
    for n in range(250):
        us_stamps_ms_clock.add_lead(status="won", updatedAt=base + timedelta(microseconds=37 * n))

    async def scenario() -> None:
        watcher = await started(us_stamps_ms_clock, updated_since=base - timedelta(seconds=1))
        reported = await watcher.collect(250)
        assert len(reported) == 250, "each lead once"
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


def test_a_server_reading_gte_as_gt_loses_no_lead_where_an_instant_spans_two_pages(
    server: FakeOctanistServer,
) -> None:
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    leads = [server.add_lead(updatedAt=base + timedelta(milliseconds=n)) for n in range(95)]
    leads += server.add_leads(15, updatedAt=base + timedelta(seconds=1))  # 5 on page 1, 10 on page 2
    server.gte_as_gt = True
    said = Said()
    notes = FeedNotes(said)

    async def scenario() -> None:
        changes = await changes_after(Cursor(base - timedelta(seconds=1)), notes)
        assert sorted(c.lead_id for c in changes.changes) == sorted(lead["id"] for lead in leads)
        again = await changes_after(changes.end, notes)
        assert again.changes == ()
        later = server.add_lead(updatedAt=base + timedelta(seconds=1))  # one more at the same instant
        last = await changes_after(changes.end, notes)
        assert [c.lead_id for c in last.changes] == [later["id"]]

    asyncio.run(scenario())
    assert notes.gte_exclusive
    assert sum("read updatedAt[gte] as [gt]" in line for line in said.warnings) == 1, said.warnings


def test_the_event_trigger_reports_every_lead_of_a_server_reading_gte_as_gt(
    server: FakeOctanistServer,
) -> None:
    server.gte_as_gt = True
    at = datetime.now(timezone.utc) - timedelta(seconds=30)
    leads = [server.add_lead(status="won", updatedAt=at + timedelta(milliseconds=n // 3)) for n in range(110)]

    async def scenario() -> None:
        watcher = await started(server, updated_since=at - timedelta(seconds=1))
        reported = await watcher.collect(110)
        assert sorted(reported) == sorted(lead["id"] for lead in leads), "each lead once"
        await watcher.quiet()
        await watcher.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("hours", [-3, 3, -13, 14])
def test_the_event_trigger_works_in_the_time_of_a_server_clock_hours_off(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str], hours: int
) -> None:
    before, after = server.add_leads(2, createdAt=LONG_AGO)
    server.clock_offset = timedelta(hours=hours)
    server.set_status(before["id"], "won", value=1)  # won before the watcher existed, by the server's clock

    async def scenario() -> None:
        watcher = await started(server)
        server.set_status(after["id"], "won", value=2)
        assert [lead["id"] for lead in await watcher.leads()] == [after["id"]]
        server.clear_requests()
        await watcher.quiet()
        polls = server.request_count("GET", "/api/leads")
        assert polls <= 0.3 / POLL + 2, f"{polls} requests in 10 idle polls: one each"
        await watcher.stop()

    asyncio.run(scenario())
    out = stdout_of(capsys)
    assert "cannot be the server's clock" not in out
    assert "after the server's clock" not in out


def test_a_server_clock_no_time_zone_explains_is_an_error_and_a_metric(
    server: FakeOctanistServer, capsys: pytest.CaptureFixture[str], counted: dict[str, int]
) -> None:
    lead = server.add_lead(createdAt=LONG_AGO)
    server.clock_offset = timedelta(days=2)

    async def scenario() -> None:
        watcher = await started(server)
        server.set_status(lead["id"], "won", value=1)
        await watcher.stop()

    asyncio.run(scenario())
    errors = [line for line in stdout_of(capsys).splitlines() if "cannot be the server's clock" in line]
    assert len(errors) == 1, errors
    assert "error" in errors[0].lower()
    assert counted.get("octanist.event_trigger.server_clock_unbelievable", 0) >= 1, counted
