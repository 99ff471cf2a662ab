"""
The hooks' side of hostile and surprising answers of a fake Octanist, sync and async alike: drips,
another lead, deep JSON, odd ``meta``, an echoed or unsendable key, repeated pages, odd numbers.

``docs/hostile-answers.md`` describes each; the change feed's side is in ``tests/triggers/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from conftest import first_trigger_event

from airflow_provider_octanist._deadline import RECANCEL_INTERVAL, within
from airflow_provider_octanist.exceptions import (
    OctanistAuthError,
    OctanistResponseError,
    OctanistServerError,
    OctanistTimeoutError,
)
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer
    from tests.hooks.conftest import Twin

DEADLINE = {"timeout": 0.5, "connect_timeout": 0.5}
"""A total deadline of 1 s per attempt (connect_timeout + timeout)."""


def _lead_gets(server: FakeOctanistServer) -> int:
    return sum(1 for r in server.requests if r.method == "GET" and r.path.startswith("/api/leads/"))


# -- a slow drip is stopped by the total deadline -----------------------------------------


def test_a_dripping_answer_ends_at_the_total_deadline_and_is_not_retried(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    lead = octanist_server.add_lead()
    connect(**DEADLINE, max_retries=3)
    octanist_server.inject("drip", count=None, interval=0.05)  # ~1 kB at 20 B/s: ~50 s undeadlined

    started = time.monotonic()
    with pytest.raises(OctanistTimeoutError, match=r"within the total timeout of 1 s") as caught:
        hook.get_lead(lead["id"])

    assert time.monotonic() - started < 5
    assert "connect_timeout + timeout" in str(caught.value)
    assert _lead_gets(octanist_server) == 1, "a drip past the deadline is not sent again"


def test_a_dripping_status_line_and_headers_end_at_the_deadline_too(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    lead = octanist_server.add_lead()
    connect(**DEADLINE, max_retries=3)
    octanist_server.inject("drip", count=None, interval=0.05, headers=True)

    started = time.monotonic()
    with pytest.raises(OctanistTimeoutError, match=r"within the total timeout of 1 s"):
        hook.get_lead(lead["id"])

    assert time.monotonic() - started < 5
    assert _lead_gets(octanist_server) == 1, "a drip past the deadline is not sent again"


def test_a_sync_hook_that_answered_in_time_keeps_its_connection_for_the_next_call(
    octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    lead = octanist_server.add_lead()
    connect(**DEADLINE)
    with OctanistHook() as sync_hook:
        for _ in range(3):
            assert sync_hook.get_lead(lead["id"])["id"] == lead["id"]
    assert octanist_server.connections_opened == 1, "the head deadline must not cost a connection"


def test_dripping_requests_free_the_shared_clients_connections_at_their_deadline(
    octanist_server: FakeOctanistServer, connect: Callable[..., None], async_transport: str
) -> None:
    lead = octanist_server.add_lead()
    connect(**DEADLINE, max_retries=0)
    octanist_server.inject("drip", count=None, interval=0.05)

    async def scenario() -> None:
        hooks = [OctanistAsyncHook() for _ in range(40)]  # more than the shared client's 32 connections
        try:
            outcomes = await asyncio.gather(*(h.get_lead(lead["id"]) for h in hooks), return_exceptions=True)
            assert all(isinstance(o, OctanistTimeoutError) for o in outcomes), outcomes
            octanist_server.clear_faults()
            assert (await hooks[0].get_lead(lead["id"]))["id"] == lead["id"]
        finally:
            for h in hooks:
                await h.aclose()

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 10


@pytest.mark.skipif(
    sys.version_info >= (3, 11),
    reason="From Python 3.11 the deadline is asyncio.timeout, and anyio counts cancellations itself",
)
def test_on_python_3_10_the_deadline_holds_when_a_library_swallows_its_cancellation() -> None:
    async def request_that_swallows_one_cancellation() -> str:
        # What anyio's task group does on Python 3.10 with a cancellation it takes for its own
        # (the connect of a request that waited for a free connection): swallow it and go on.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        await asyncio.sleep(30)
        return "answered long after the deadline"

    async def scenario() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await within(0.05, request_that_swallows_one_cancellation())
        # Nothing of the deadline is left behind to cancel what the task does next.
        await asyncio.sleep(RECANCEL_INTERVAL * 3)

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 5


def test_the_status_trigger_end_time_holds_while_a_request_drips(
    octanist_server: FakeOctanistServer, connect: Callable[..., None], async_transport: str
) -> None:
    lead = octanist_server.add_lead()
    connect()  # default timeouts: 40 s per attempt; only the end time can stop it in time
    octanist_server.inject("drip", count=None, interval=0.05)
    trigger = OctanistLeadStatusTrigger(lead["id"], poll_interval=0.05, end_time=time.time() + 1.5)

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload
        return None

    started = time.monotonic()
    event = asyncio.run(first_event())
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 5


# -- another lead than the one asked for ------------------------------------------------


def test_get_lead_refuses_an_answer_about_another_lead(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    asked, other = octanist_server.add_lead(), octanist_server.add_lead()
    octanist_server.inject("wrong_lead", path_prefix="/api/leads/")

    with pytest.raises(OctanistResponseError, match="with another lead") as caught:
        hook.get_lead(asked["id"])
    assert other["id"] in str(caught.value)


# -- JSON nested too deeply ----------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [(200, OctanistResponseError), (500, OctanistServerError)])
def test_deeply_nested_json_is_a_documented_error(
    hook: Twin,
    octanist_server: FakeOctanistServer,
    connect: Callable[..., None],
    status: int,
    error: type[Exception],
) -> None:
    connect(max_retries=0)
    octanist_server.inject("nested", depth=100_000, status=status)

    with pytest.raises(error) as caught:
        hook.get_lead("lead_1")
    assert type(caught.value) is error
    if status == 200:
        assert "nested too deeply" in str(caught.value)


# -- meta that is not an object -----------------------------------------------------------


@pytest.mark.parametrize("meta", [None, "x", [1]])
def test_a_meta_that_is_not_an_object_is_refused(
    hook: Twin, octanist_server: FakeOctanistServer, meta: Any
) -> None:
    octanist_server.add_leads(3)
    octanist_server.inject("envelope", meta=meta, path="/api/leads")

    with pytest.raises(OctanistResponseError, match="meta of type"):
        hook.list_leads()


def test_an_absent_meta_is_read_as_one_page(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.add_leads(3)
    octanist_server.inject("envelope", remove=("meta",), path="/api/leads")

    assert len(hook.list_leads()) == 3


# -- a server that echoes the key ----------------------------------------------------------


def test_an_echoed_key_reaches_no_exception_nor_test_connection(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    key = octanist_server.api_key
    octanist_server.inject("echo_key", count=None)

    with pytest.raises(OctanistAuthError) as caught:
        hook.get_lead("lead_1")
    error = caught.value
    assert "Invalid API key: ***" in str(error)
    for text in (str(error), repr(error), error.message, repr(pickle.loads(pickle.dumps(error)))):
        assert key not in text

    ok, message = hook.test_connection()
    assert not ok
    assert key not in message


def test_an_echoed_key_reaches_no_trigger_event(
    octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect()
    octanist_server.inject("echo_key", count=None)
    event = first_trigger_event(OctanistLeadStatusTrigger("lead_1", poll_interval=0.05))

    assert event["status"] == "error"
    assert octanist_server.api_key not in repr(event)


# -- a key that cannot go into a header ------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("abc\u200bdefgh", "a non-ASCII character (U+200B) at position 4"),
        ("abc\r\ndefgh", "a line break at position 4"),
        ("abc\x00defgh", "a control character at position 4"),
    ],
)
def test_an_unsendable_key_is_refused_up_front_without_showing_it(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None], key: str, words: str
) -> None:
    connect(password=key)

    with pytest.raises(OctanistAuthError) as caught:
        hook.get_lead("lead_1")
    assert words in str(caught.value)
    for text in (str(caught.value), repr(caught.value), repr(pickle.loads(pickle.dumps(caught.value)))):
        assert "defgh" not in text
    assert caught.value.__cause__ is None
    assert not octanist_server.requests, "nothing was sent, and nothing retried"

    ok, message = hook.test_connection()
    assert not ok
    assert words in message
    assert "defgh" not in message


# -- pages that repeat --------------------------------------------------------------------------


def test_a_page_of_leads_already_seen_stops_the_listing_at_once(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(250)
    octanist_server.inject("repeat_pages", count=None, method="GET", path="/api/leads")

    with pytest.raises(OctanistResponseError, match="same page again"):
        hook.list_leads()
    assert octanist_server.request_count("GET", "/api/leads") == 2


# -- NaN and Infinity ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "words"), [(float("nan"), "NaN"), (float("inf"), "Infinity")])
def test_non_standard_json_numbers_are_refused(
    hook: Twin, octanist_server: FakeOctanistServer, value: float, words: str
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("corrupt_lead", fields={"value": value})

    with pytest.raises(OctanistResponseError, match=f"non-standard number {words}"):
        hook.get_lead(lead["id"])


def test_a_number_overflowing_to_infinity_is_refused(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.add_lead()
    octanist_server.inject("transform", function=lambda payload: '{"success": true, "data": {"v": 1e999}}')

    with pytest.raises(OctanistResponseError, match="overflows to infinity"):
        hook.get_stats()


# -- a string success, a huge message -------------------------------------------------------


def test_a_success_that_is_not_a_boolean_is_refused(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("envelope", success="false")

    with pytest.raises(OctanistResponseError, match="success of type str"):
        hook.get_lead(lead["id"])


def test_a_huge_error_message_is_capped(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect(max_retries=0)
    octanist_server.inject("status", status=500, message="x" * 5_000_000)

    with pytest.raises(OctanistServerError) as caught:
        hook.get_lead("lead_1")
    assert len(str(caught.value)) < 1_000
    assert "x" * 499 + "\u2026" in caught.value.message
