"""
OctanistLeadStatusTrigger, run as the triggerer runs it: its async generator, against the fake server.

These tests pin polling a lead on its own (``shared_feed=False``, and the fallback of the shared
feed); the shared change feed has its own tests in ``tests/triggers/_status/``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import Any

import pytest
from conftest import connection_json

from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

LEAD = "lead_status_trigger"
FAST = {"poll_interval": 0.01, "max_backoff": 0.05, "shared_feed": False}


@pytest.fixture
def server(octanist_server, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The fake server behind ``octanist_default``, with one hook retry so faults reach the trigger fast."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        connection_json(octanist_server.url, octanist_server.api_key, retry_backoff=0.01, max_retries=1),
    )
    return octanist_server


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the async hook's ``aclose`` calls (the real method still runs)."""
    calls: list[int] = []
    original = OctanistAsyncHook.aclose

    async def counting_aclose(self: OctanistAsyncHook) -> None:
        calls.append(1)
        await original(self)

    monkeypatch.setattr(OctanistAsyncHook, "aclose", counting_aclose)
    return calls


def events_of(trigger: OctanistLeadStatusTrigger, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Every event the trigger yields before its generator ends (bounded)."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout))


def only_event(trigger: OctanistLeadStatusTrigger) -> dict[str, Any]:
    events = events_of(trigger)
    assert len(events) == 1, f"a lead-status trigger fires exactly once, got {events}"
    return events[0]


def gets(server: Any, lead_id: str = LEAD) -> int:
    return server.request_count("GET", f"/api/leads/{lead_id}")


# -- serialization -----------------------------------------------------------------------------


def test_serialize_round_trips_through_its_classpath() -> None:
    trigger = OctanistLeadStatusTrigger(
        LEAD,
        target_statuses=("qualified", "win"),
        failure_statuses="lost",
        octanist_conn_id="octanist_eu",
        poll_interval=30,
        end_time=1_900_000_000.5,
        max_consecutive_errors=7,
        max_backoff=120,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_octanist.triggers.octanist.OctanistLeadStatusTrigger"
    module_name, _, class_name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["target_statuses"] == ["qualified", "won"]
    assert kwargs["end_time"] == 1_900_000_000.5


def test_serialized_kwargs_are_plain_json_without_the_api_key(server: Any) -> None:
    _, kwargs = OctanistLeadStatusTrigger(LEAD, end_time=time.time() + 60).serialize()
    text = json.dumps(kwargs)  # plain values only: this raises on anything else
    assert server.api_key not in text
    assert kwargs["octanist_conn_id"] == "octanist_default"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"lead_id": ""}, "lead_id"),
        ({"lead_id": LEAD, "poll_interval": 0}, "poll_interval"),
        ({"lead_id": LEAD, "max_consecutive_errors": 0}, "max_consecutive_errors"),
        ({"lead_id": LEAD, "end_time": "tomorrow"}, "end_time"),
        ({"lead_id": LEAD, "target_statuses": ("closed",)}, "closed"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        OctanistLeadStatusTrigger(**kwargs)


# -- outcomes ----------------------------------------------------------------------------------


def test_a_lead_already_won_fires_success_with_the_lead_after_one_request(server: Any) -> None:
    server.add_lead(id=LEAD, status="won", value=900)
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST))
    assert event["status"] == "success"
    assert event["lead"]["id"] == LEAD
    assert event["lead"]["value"] == 900
    assert gets(server) == 1


def test_keeps_polling_until_the_lead_turns_won(server: Any) -> None:
    server.add_lead(id=LEAD)

    async def run_and_flip() -> dict[str, Any]:
        task = asyncio.ensure_future(_first_event(OctanistLeadStatusTrigger(LEAD, **FAST)))
        await _until(lambda: gets(server) >= 3, "three polls of the open lead")
        server.set_status(LEAD, "won", value=10)
        return await asyncio.wait_for(task, 10)

    event = asyncio.run(run_and_flip())
    assert event["status"] == "success"
    assert event["lead"]["status"] == "won"
    assert gets(server) >= 4


def test_a_failure_status_fires_failure_with_the_lead(server: Any) -> None:
    server.add_lead(id=LEAD, status="lost", lossReason="Went with a competitor")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST))
    assert event["status"] == "failure"
    assert event["lead"]["lossReason"] == "Went with a competitor"


def test_an_unknown_lead_fires_not_found_at_once(server: Any) -> None:
    event = only_event(OctanistLeadStatusTrigger("lead_nobody", **FAST))
    assert event["status"] == "not_found"
    assert "lead_nobody" in event["message"]
    assert gets(server, "lead_nobody") == 1


def test_a_rejected_api_key_fires_error_at_once(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server.add_lead(id=LEAD)
    monkeypatch.setenv("AIRFLOW_CONN_OCTANIST_DEFAULT", connection_json(server.url, "not-the-key"))
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST))
    assert event["status"] == "error"
    assert "API key" in event["message"]
    assert "not-the-key" not in event["message"]
    assert gets(server) == 1


def test_the_end_time_fires_timeout_naming_the_last_status(server: Any) -> None:
    server.add_lead(id=LEAD, status="qualified")
    started = time.monotonic()
    event = only_event(OctanistLeadStatusTrigger(LEAD, poll_interval=0.05, end_time=time.time() + 0.3))
    assert event["status"] == "timeout"
    assert "'qualified'" in event["message"]
    assert event["lead"]["status"] == "qualified"
    assert time.monotonic() - started < 5


def test_a_huge_status_is_capped_in_the_timeout_event_and_the_waiting_line(
    server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server.add_lead(id=LEAD)
    huge = "s" * 1_000_000

    def with_huge_status(payload: Any) -> Any:
        payload["data"]["status"] = huge
        return payload

    server.inject("transform", function=with_huge_status, count=None, path=f"/api/leads/{LEAD}")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST, end_time=time.time() + 0.3))

    assert event["status"] == "timeout"
    assert f"it was last '{'s' * 98}\u2026" in event["message"]
    assert len(event["message"]) < 1_000
    captured = capsys.readouterr()
    [waiting] = [line for line in (captured.out + captured.err).splitlines() if "waiting until" in line]
    assert f"is {'s' * 99}\u2026; waiting until it is won" in waiting
    assert len(waiting) < 1_000


def test_an_end_time_in_the_past_still_checks_once(server: Any) -> None:
    server.add_lead(id=LEAD, status="won")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST, end_time=time.time() - 10))
    assert event["status"] == "success"


# -- transient errors --------------------------------------------------------------------------


def test_keeps_polling_through_a_burst_of_503(server: Any) -> None:
    server.add_lead(id=LEAD, status="won")
    # Six answers of 503: with one hook retry per poll, three polls in a row fail.
    server.inject("status", status=503, count=6, path=f"/api/leads/{LEAD}")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST, max_consecutive_errors=4))
    assert event["status"] == "success"
    assert gets(server) == 7


def test_keeps_polling_through_dropped_connections(server: Any) -> None:
    server.add_lead(id=LEAD, status="won")
    server.inject("drop", count=2, path=f"/api/leads/{LEAD}")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST, max_consecutive_errors=2))
    assert event["status"] == "success"
    assert gets(server) == 3


def test_keeps_polling_through_rate_limits_and_garbage(server: Any) -> None:
    server.add_lead(id=LEAD, status="won")
    server.inject("status", status=429, count=2, path=f"/api/leads/{LEAD}")
    server.inject("garbage", count=1, path=f"/api/leads/{LEAD}")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST, max_consecutive_errors=3))
    assert event["status"] == "success"


def test_gives_up_with_an_error_after_too_many_failures_in_a_row(server: Any) -> None:
    server.add_lead(id=LEAD, status="won")
    server.inject("status", status=503, count=1000, path=f"/api/leads/{LEAD}")
    event = only_event(OctanistLeadStatusTrigger(LEAD, **FAST, max_consecutive_errors=3))
    assert event["status"] == "error"
    assert "3 failed checks in a row" in event["message"]
    assert "503" in event["message"]
    assert gets(server) == 6  # three polls, each one request plus one hook retry


def test_a_successful_poll_resets_the_failure_count(server: Any) -> None:
    server.add_lead(id=LEAD)
    path = f"/api/leads/{LEAD}"

    async def scenario() -> dict[str, Any]:
        task = asyncio.ensure_future(
            _first_event(OctanistLeadStatusTrigger(LEAD, **FAST, max_consecutive_errors=2))
        )
        for burst in range(3):  # each burst fails one poll; two in a row would end the trigger
            server.inject("status", status=503, count=2, path=path)
            await _until(lambda: not server.pending_faults, f"burst {burst} to be served")
            seen = gets(server)
            await _until(lambda seen=seen: gets(server) > seen, "a successful poll after the burst")
        server.set_status(LEAD, "won")
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(scenario())["status"] == "success"


def test_a_timeout_during_errors_names_the_last_error(server: Any) -> None:
    server.add_lead(id=LEAD)
    server.inject("status", status=502, count=1000, path=f"/api/leads/{LEAD}")
    trigger = OctanistLeadStatusTrigger(
        LEAD, poll_interval=0.05, max_backoff=0.05, end_time=time.time() + 0.3, max_consecutive_errors=10_000
    )
    event = only_event(trigger)
    assert event["status"] == "timeout"
    assert "502" in event["message"]


# -- the HTTP client is closed on every exit ---------------------------------------------------


@pytest.mark.parametrize("outcome", ["won", "lost", "missing", "errors"])
def test_the_http_client_is_closed_whatever_the_outcome(server: Any, closes: list[int], outcome: str) -> None:
    if outcome != "missing":
        server.add_lead(id=LEAD, status="lost" if outcome == "lost" else "won")
    if outcome == "errors":
        server.inject("status", status=500, count=1000, path=f"/api/leads/{LEAD}")
    only_event(OctanistLeadStatusTrigger(LEAD, **FAST, max_consecutive_errors=2))
    assert closes == [1]


def test_the_http_client_is_closed_when_the_trigger_is_cancelled(server: Any, closes: list[int]) -> None:
    server.add_lead(id=LEAD)

    async def cancel_while_waiting() -> None:
        task = asyncio.ensure_future(
            _first_event(OctanistLeadStatusTrigger(LEAD, poll_interval=60, shared_feed=False))
        )
        await _until(lambda: gets(server) >= 1, "the first poll")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_waiting())
    assert closes == [1]


# -- async helpers -----------------------------------------------------------------------------


async def _first_event(trigger: OctanistLeadStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


async def _until(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)
