"""Async hooks of one connection in one event loop share one HTTP client, and close it together."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.hooks._transport import shared_client as shared_clients
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer


@pytest.fixture
def second_connection(octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """``octanist_eu``: the same server under another connection id, with another read timeout."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_EU",
        json.dumps(
            {
                "conn_type": "octanist",
                "host": octanist_server.url,
                "password": octanist_server.api_key,
                "extra": {"retry_backoff": 0.01, "timeout": 7},
            }
        ),
    )
    return "octanist_eu"


async def until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait until ``condition()`` holds, checking every few ms; fail naming ``what`` after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        await asyncio.sleep(0.005)


def test_hooks_of_one_connection_in_one_loop_share_one_client_and_its_connection(
    octanist_server: FakeOctanistServer, lead: str, async_transport: str
) -> None:
    async def scenario() -> None:
        first, second = OctanistAsyncHook(), OctanistAsyncHook()
        assert await first.get_client() is await second.get_client()
        for hook in (first, second, first, second):
            assert (await hook.get_lead(lead))["id"] == lead
        await first.aclose()
        await second.aclose()

    asyncio.run(scenario())
    assert octanist_server.connections_opened == 1


def test_the_client_stays_open_until_the_last_hook_lets_go(lead: str) -> None:
    async def scenario() -> None:
        first, second = OctanistAsyncHook(), OctanistAsyncHook()
        client = await first.get_client()
        await second.get_client()
        await first.aclose()
        assert not client.is_closed, "closed while another hook still used it"
        assert (await second.get_lead(lead))["id"] == lead
        await second.aclose()
        assert client.is_closed, "the last hook to let go must close the client"

    asyncio.run(scenario())


def test_hooks_that_start_and_stop_at_different_times_always_have_an_open_client(lead: str) -> None:
    async def scenario() -> None:
        first = OctanistAsyncHook()
        await first.get_lead(lead)
        second = OctanistAsyncHook()
        await second.get_lead(lead)
        await first.aclose()
        third = OctanistAsyncHook()  # arrives while the second still holds the client
        assert await third.get_client() is await second.get_client()
        await second.aclose()
        assert (await third.get_lead(lead))["id"] == lead
        old = await third.get_client()
        await third.aclose()
        assert old.is_closed
        fourth = OctanistAsyncHook()  # arrives after everyone left: a fresh client
        fresh = await fourth.get_client()
        assert fresh is not old
        assert not fresh.is_closed
        assert (await fourth.get_lead(lead))["id"] == lead
        await fourth.aclose()

    asyncio.run(scenario())


def test_closing_a_hook_twice_or_before_use_releases_nothing_else(lead: str) -> None:
    async def scenario() -> None:
        idle, user = OctanistAsyncHook(), OctanistAsyncHook()
        await idle.aclose()
        client = await user.get_client()
        other = OctanistAsyncHook()
        await other.get_client()
        await other.aclose()
        await other.aclose()
        assert not client.is_closed
        assert (await user.get_lead(lead))["id"] == lead
        await user.aclose()
        assert client.is_closed

    asyncio.run(scenario())


def test_different_connections_get_different_clients(lead: str, second_connection: str) -> None:
    async def scenario() -> None:
        default, eu = OctanistAsyncHook(), OctanistAsyncHook(second_connection)
        default_client, eu_client = await default.get_client(), await eu.get_client()
        assert default_client is not eu_client
        assert eu_client.timeout.read == 7
        assert (await eu.get_lead(lead))["id"] == lead
        await default.aclose()
        assert default_client.is_closed
        assert not eu_client.is_closed
        await eu.aclose()

    asyncio.run(scenario())


def test_a_hook_with_its_own_timeout_does_not_share_with_the_default(lead: str) -> None:
    async def scenario() -> None:
        plain, patient = OctanistAsyncHook(), OctanistAsyncHook(timeout=99)
        assert await plain.get_client() is not await patient.get_client()
        assert (await patient.get_client()).timeout.read == 99
        await plain.aclose()
        await patient.aclose()

    asyncio.run(scenario())


def test_event_loops_running_at_once_in_two_threads_each_get_their_own_client(
    octanist_server: FakeOctanistServer, lead: str
) -> None:
    clients: dict[str, Any] = {}
    errors: list[BaseException] = []
    both_hold_a_client = threading.Barrier(2, timeout=30)

    def in_thread(name: str) -> None:
        async def scenario() -> None:
            hook = OctanistAsyncHook()
            clients[name] = await hook.get_client()
            await asyncio.to_thread(both_hold_a_client.wait)
            assert (await hook.get_lead(lead))["id"] == lead
            await hook.aclose()

        try:
            asyncio.run(scenario())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=in_thread, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert clients["a"] is not clients["b"]
    assert clients["a"].is_closed
    assert clients["b"].is_closed


def test_a_hook_reused_in_a_later_event_loop_gets_that_loops_client(lead: str) -> None:
    hook = OctanistAsyncHook()
    first_loop = asyncio.new_event_loop()
    first = first_loop.run_until_complete(hook.get_client())
    first_loop.run_until_complete(hook.get_lead(lead))
    first_loop.close()  # without aclose(): the loop is gone, its client cannot be used any more

    async def later() -> Any:
        client = await hook.get_client()
        assert (await hook.get_lead(lead))["id"] == lead
        await hook.aclose()
        return client

    second = asyncio.run(later())
    assert second is not first
    assert second.is_closed


def test_a_client_closed_behind_the_hooks_back_is_replaced(lead: str) -> None:
    async def scenario() -> None:
        first, second = OctanistAsyncHook(), OctanistAsyncHook()
        broken = await first.get_client()
        await second.get_client()
        await broken.aclose()
        assert (await first.get_lead(lead))["id"] == lead
        replacement = await first.get_client()
        assert replacement is not broken
        assert await second.get_client() is replacement
        await first.aclose()
        assert not replacement.is_closed
        await second.aclose()
        assert replacement.is_closed

    asyncio.run(scenario())


def test_a_burst_larger_than_the_client_waits_for_free_slots_and_all_succeed(
    octanist_server: FakeOctanistServer, lead: str, monkeypatch: pytest.MonkeyPatch, async_transport: str
) -> None:
    monkeypatch.setattr(shared_clients, "POOLS", 2)
    monkeypatch.setattr(shared_clients, "CONNECTIONS_PER_POOL", 2)
    octanist_server.latency = 0.02

    async def scenario() -> list[dict[str, Any]]:
        hooks = [OctanistAsyncHook() for _ in range(40)]
        try:
            return await asyncio.gather(*(hook.get_lead(lead) for hook in hooks))
        finally:
            for hook in hooks:
                await hook.aclose()

    leads = asyncio.run(scenario())
    assert [item["id"] for item in leads] == [lead] * 40
    assert octanist_server.connections_opened <= 4


def test_the_shared_client_never_holds_or_logs_the_api_key(
    octanist_server: FakeOctanistServer, lead: str, caplog: pytest.LogCaptureFixture, async_transport: str
) -> None:
    key = octanist_server.api_key
    seen: list[str] = []

    async def scenario() -> None:
        first, second = OctanistAsyncHook(), OctanistAsyncHook()
        client = await first.get_client()
        await second.get_lead(lead)
        seen.append(repr(shared_clients.REGISTRY._clients))
        seen.append(repr(dict(client.headers)))
        await first.aclose()
        await second.aclose()

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert key not in "".join(seen)
    if async_transport == "httpx":  # aiohttp logs nothing of a request
        assert "send_request_headers" in caplog.text, "the HTTP client's debug log was not captured"
    assert key not in caplog.text
    assert octanist_server.requests[-1].api_key_sent


def test_triggers_that_start_and_stop_at_different_times_share_one_client(
    octanist_server: FakeOctanistServer, lead: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = str(octanist_server.add_lead(name="Grace")["id"])
    closed_after: list[bool] = []
    real_aclose = OctanistAsyncHook.aclose

    async def recording_aclose(hook: OctanistAsyncHook) -> None:
        client = hook._shared.client if hook._shared is not None else None
        await real_aclose(hook)
        closed_after.append(client is not None and client.is_closed)

    monkeypatch.setattr(OctanistAsyncHook, "aclose", recording_aclose)

    def polls(lead_id: str) -> int:
        return octanist_server.request_count("GET", f"/api/leads/{lead_id}")

    async def first_event(trigger: OctanistLeadStatusTrigger) -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    async def scenario() -> Any:
        early = asyncio.ensure_future(
            first_event(OctanistLeadStatusTrigger(lead, poll_interval=0.05, shared_feed=False))
        )
        await until(lambda: polls(lead) >= 2, "the first trigger polled twice")
        late = asyncio.ensure_future(
            first_event(OctanistLeadStatusTrigger(other, poll_interval=0.05, shared_feed=False))
        )
        await until(lambda: polls(other) >= 1, "the second trigger polled")
        octanist_server.set_status(lead, "won", value=10)
        done = await asyncio.wait_for(early, 30)
        after = polls(other)
        await until(lambda: polls(other) >= after + 2, "the second trigger kept polling alone")
        late.cancel()
        await asyncio.gather(late, return_exceptions=True)
        return done

    event = asyncio.run(scenario())
    assert event["status"] == "success"
    assert closed_after == [False, True], "the first trigger to stop must leave the client to the other"


def test_a_request_that_fails_gives_its_slot_back(
    octanist_server: FakeOctanistServer, lead: str, monkeypatch: pytest.MonkeyPatch, async_transport: str
) -> None:
    monkeypatch.setattr(shared_clients, "POOLS", 1)
    monkeypatch.setattr(shared_clients, "CONNECTIONS_PER_POOL", 1)
    octanist_server.inject("drop", count=2, path=f"/api/leads/{lead}")

    async def scenario() -> list[str]:
        async with OctanistAsyncHook() as hook:
            # Two dropped connections are retried; with a leaked slot the later calls would wait forever.
            return [(await asyncio.wait_for(hook.get_lead(lead), 10))["id"] for _ in range(4)]

    assert asyncio.run(scenario()) == [lead] * 4
    assert octanist_server.request_count("GET", f"/api/leads/{lead}") == 6


def test_a_cancelled_request_gives_its_slot_back(
    octanist_server: FakeOctanistServer, lead: str, monkeypatch: pytest.MonkeyPatch, async_transport: str
) -> None:
    monkeypatch.setattr(shared_clients, "POOLS", 1)
    monkeypatch.setattr(shared_clients, "CONNECTIONS_PER_POOL", 1)

    async def scenario() -> str:
        async with OctanistAsyncHook() as slow, OctanistAsyncHook() as quick:
            octanist_server.latency = 5
            stuck = asyncio.ensure_future(slow.get_lead(lead))
            path = f"/api/leads/{lead}"
            await until(lambda: octanist_server.request_count("GET", path) == 1, "the request arrived")
            stuck.cancel()
            await asyncio.gather(stuck, return_exceptions=True)
            octanist_server.latency = 0
            return str((await asyncio.wait_for(quick.get_lead(lead), 10))["id"])

    assert asyncio.run(scenario()) == lead
