"""The retry policy against real faults: what is retried, how long it waits, and what is never replayed."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING

import pytest

from airflow_provider_octanist import _api as api
from airflow_provider_octanist.exceptions import (
    OctanistConnectionError,
    OctanistRateLimitError,
    OctanistServerError,
    OctanistTimeoutError,
)
from airflow_provider_octanist.hooks import octanist as hook_module
from airflow_provider_octanist.hooks.octanist import OctanistHook
from airflow_provider_octanist.testing import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .conftest import Twin

BACKOFF = 0.01  # the retry_backoff extra of every test connection


def _backoff_bounds(retry: int) -> tuple[float, float]:
    ceiling = BACKOFF * 2 ** (retry - 1)
    return ceiling / 2, ceiling


# -- reads are retried -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_transient_error_then_success_is_retried(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float], status: int
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("status", status=status, count=2)

    assert hook.get_lead(lead["id"]) == lead
    assert octanist_server.request_count("GET") == 3
    assert len(waits) == 2
    for retry, wait in enumerate(waits, start=1):
        low, high = _backoff_bounds(retry)
        assert low <= wait <= high


def test_retry_after_in_seconds_is_honoured(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("status", status=429, retry_after=2)

    hook.list_leads()

    assert octanist_server.request_count() == 2
    assert len(waits) == 1
    assert waits[0] >= 2  # the exponential backoff alone would wait 10 ms


def test_retry_after_as_an_http_date_is_honoured(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    octanist_server.inject("status", status=503, retry_after=format_datetime(later, usegmt=True))

    hook.get_stats()

    assert octanist_server.request_count() == 2
    assert 25 <= waits[0] <= 30


def test_retry_after_is_capped(hook: Twin, octanist_server: FakeOctanistServer, waits: list[float]) -> None:
    octanist_server.inject("status", status=429, retry_after=86_400)

    hook.list_leads()

    assert waits == [api.MAX_RETRY_WAIT]


def test_backoff_grows_exponentially_between_retries(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("status", status=503, count=3)

    hook.get_stats()

    assert len(waits) == 3
    for retry, wait in enumerate(waits, start=1):
        low, high = _backoff_bounds(retry)
        assert low <= wait <= high, (retry, wait)


def test_max_retries_from_the_hook_overrides_the_connection(
    make_twin: Callable[..., Twin], octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("status", status=500, count=10)

    with pytest.raises(OctanistServerError, match="after 1 retry"):
        make_twin(max_retries=1).list_leads()

    assert octanist_server.request_count() == 2


def test_max_retries_zero_sends_once(
    make_twin: Callable[..., Twin], connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    connect(max_retries=0)
    octanist_server.inject("status", status=503, count=10)

    with pytest.raises(OctanistServerError) as caught:
        make_twin().get_stats()

    assert (
        caught.value.message
        == "Octanist failed POST /stats with a server error: Service temporarily unavailable"
    )
    assert octanist_server.request_count() == 1


def test_a_slow_answer_raises_timeout_error(
    make_twin: Callable[..., Twin], octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("delay", seconds=5)

    with pytest.raises(OctanistTimeoutError) as caught:
        make_twin(timeout=0.2, max_retries=0).get_stats()

    message = str(caught.value)
    assert message.startswith(
        "No answer from Octanist for POST /stats after 1 attempt(s): no response within"
    )
    assert "Raise the connection's timeout/connect_timeout extras" in message
    assert octanist_server.request_count() == 1


def test_a_read_timeout_on_a_read_is_retried(
    make_twin: Callable[..., Twin], octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=5)

    assert make_twin(timeout=0.2).get_lead(lead["id"]) == lead
    assert octanist_server.request_count() == 2
    assert len(waits) == 1


def test_the_timeout_extra_applies(
    make_twin: Callable[..., Twin], connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    connect(timeout=0.2, max_retries=0)
    octanist_server.inject("delay", seconds=5)

    with pytest.raises(OctanistTimeoutError):
        make_twin().list_leads()


@pytest.mark.parametrize("fault", ["drop", "truncated"])
def test_a_broken_answer_to_a_read_is_retried(
    hook: Twin, octanist_server: FakeOctanistServer, waits: list[float], fault: str
) -> None:
    leads = octanist_server.add_leads(3)
    octanist_server.inject(fault)

    assert hook.list_leads(sort="createdAt:asc") == sorted(leads, key=lambda lead: lead["createdAt"])
    assert octanist_server.request_count() == 2
    assert len(waits) == 1


@pytest.mark.parametrize("fault", ["drop", "truncated"])
def test_a_read_broken_on_every_try_raises_connection_error(
    hook: Twin, octanist_server: FakeOctanistServer, fault: str
) -> None:
    octanist_server.inject(fault, count=10)

    with pytest.raises(OctanistConnectionError) as caught:
        hook.list_leads()

    assert not isinstance(caught.value, OctanistTimeoutError)
    assert "after 4 attempt(s)" in str(caught.value)
    assert octanist_server.request_count() == 4


def test_a_refused_connection_is_retried_then_reported(
    make_twin: Callable[..., Twin], connect: Callable[..., None], refusing: socket.socket, waits: list[float]
) -> None:
    free_port = _port(refusing)
    connect(host=f"http://127.0.0.1:{free_port}/api")

    with pytest.raises(OctanistConnectionError) as caught:
        make_twin().get_stats()

    assert caught.value.may_have_reached_server is False
    assert "could not be opened" in str(caught.value)
    assert f"Check the connection's base URL (http://127.0.0.1:{free_port}/api)" in str(caught.value)
    assert len(waits) == 3


def test_patch_is_retried_because_it_sets_absolute_values(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("drop", process=True, method="PATCH")

    sync_hook.update_lead(lead_id=lead["id"], status="won", value=10)

    assert octanist_server.request_count("PATCH", "/api/leads") == 2
    assert octanist_server.lead(lead["id"])["status"] == "won"


def test_an_update_without_a_note_is_retried_after_a_read_timeout(
    connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=5, method="PATCH", path="/api/leads")

    with OctanistHook(timeout=1.0) as hook:
        hook.update_lead(lead_id=lead["id"], status="won", value=10)

    assert octanist_server.request_count("PATCH", "/api/leads") == 2


# -- an update carrying a note is never replayed once it may have reached Octanist -------------


def test_an_update_with_a_note_is_not_replayed_after_a_read_timeout(
    connect: Callable[..., None], octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=5, method="PATCH", path="/api/leads")

    with OctanistHook(timeout=0.2) as hook, pytest.raises(OctanistTimeoutError) as caught:
        hook.update_lead(lead_id=lead["id"], status="won", note="Signed the contract")

    assert caught.value.may_have_reached_server is True
    assert "so it was not sent again to avoid doing it twice: its outcome is unknown" in str(caught.value)
    assert octanist_server.request_count("PATCH", "/api/leads") == 1
    assert waits == []


def test_an_update_with_a_note_is_not_replayed_after_a_dropped_connection(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("drop", process=True, method="PATCH", path="/api/leads")

    with pytest.raises(OctanistConnectionError, match="its outcome is unknown"):
        sync_hook.update_lead(lead_id=lead["id"], note="Called back")

    assert octanist_server.request_count("PATCH", "/api/leads") == 1
    assert octanist_server.lead(lead["id"])["note"] == "Called back"
    assert waits == []


def test_an_update_with_a_note_is_not_replayed_after_a_server_error(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("status", status=503, method="PATCH", path="/api/leads")

    with pytest.raises(
        OctanistServerError, match="It was not sent again because Octanist may have processed it"
    ):
        sync_hook.update_lead(lead_id=lead["id"], note="Called back")

    assert octanist_server.request_count("PATCH", "/api/leads") == 1


def test_an_update_with_a_note_is_retried_after_429(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("status", status=429, retry_after=1, method="PATCH", path="/api/leads")

    sync_hook.update_lead(lead_id=lead["id"], note="Called back")

    assert octanist_server.request_count("PATCH", "/api/leads") == 2
    assert octanist_server.lead(lead["id"])["note"] == "Called back"
    assert waits[0] >= 1


# -- the sync hook tells its caller about every 429 ---------------------------------------------


def test_on_rate_limited_hears_each_429_with_its_retry_after(
    connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    heard: list[float | None] = []
    octanist_server.inject("status", status=429, retry_after=2, count=1)
    octanist_server.inject("status", status=429, count=1)

    with OctanistHook(on_rate_limited=heard.append) as hook:
        hook.get_stats()

    assert heard == [2.0, None]
    assert octanist_server.request_count() == 3


def test_on_rate_limited_hears_the_429_that_is_not_retried_any_more(
    connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    heard: list[float | None] = []
    octanist_server.inject("status", status=429, retry_after=1)

    with (
        OctanistHook(max_retries=0, on_rate_limited=heard.append) as hook,
        pytest.raises(OctanistRateLimitError),
    ):
        hook.get_stats()

    assert heard == [1.0]


# -- creating a lead is never replayed once it may have reached Octanist -----------------------


def test_create_lead_is_not_replayed_after_a_dropped_connection(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("drop", process=True, method="POST", path="/api/leads")

    with pytest.raises(OctanistConnectionError) as caught:
        sync_hook.create_lead(email="once@example.com")

    assert caught.value.may_have_reached_server is True
    assert "The request may have reached Octanist, so it was not sent again" in str(caught.value)
    assert octanist_server.request_count("POST", "/api/leads") == 1
    assert [lead["email"] for lead in octanist_server.leads] == ["once@example.com"]
    assert waits == []


def test_create_lead_is_not_replayed_after_a_read_timeout(
    connect: Callable[..., None], octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("delay", seconds=5, method="POST", path="/api/leads")

    with OctanistHook(timeout=0.2) as hook, pytest.raises(OctanistTimeoutError) as caught:
        hook.create_lead(email="once@example.com")

    assert caught.value.may_have_reached_server is True
    assert "may have reached Octanist" in str(caught.value)
    assert octanist_server.request_count("POST", "/api/leads") == 1
    assert waits == []


def test_create_lead_is_not_replayed_after_a_cut_off_answer(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.inject("truncated", method="POST", path="/api/leads")

    with pytest.raises(OctanistConnectionError, match="may have reached Octanist"):
        sync_hook.create_lead(email="once@example.com")

    assert octanist_server.request_count("POST", "/api/leads") == 1
    assert len(octanist_server.leads) == 1


def test_create_lead_is_not_replayed_after_a_server_error(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("status", status=503, method="POST", path="/api/leads")

    with pytest.raises(OctanistServerError) as caught:
        sync_hook.create_lead(email="once@example.com")

    assert (
        caught.value.message
        == "Octanist failed POST /leads with a server error: Service temporarily unavailable"
    )
    assert "It was not sent again because Octanist may have processed it" in str(caught.value)
    assert octanist_server.request_count("POST", "/api/leads") == 1
    assert waits == []


def test_create_lead_is_retried_after_429(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer, waits: list[float]
) -> None:
    octanist_server.inject("status", status=429, retry_after=1, method="POST", path="/api/leads")

    created = sync_hook.create_lead(email="once@example.com")

    assert octanist_server.request_count("POST", "/api/leads") == 2
    assert [lead["id"] for lead in octanist_server.leads] == [created["id"]]
    assert waits[0] >= 1


def test_create_lead_is_retried_when_the_connection_was_refused(
    connect: Callable[..., None], refusing: socket.socket, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    # Nothing listens on the port at first; the server comes up on it during the hook's first wait.
    free_port = _port(refusing)
    connect(host=f"http://127.0.0.1:{free_port}/api", password="test-api-key")
    servers: list[FakeOctanistServer] = []

    def start_server_then_record(seconds: float) -> None:
        waits.append(seconds)
        if not servers:
            refusing.close()
            servers.append(FakeOctanistServer(port=free_port).start())

    monkeypatch.setattr(hook_module, "sleep", start_server_then_record)
    try:
        with OctanistHook() as hook:
            created = hook.create_lead(email="once@example.com")
        [server] = servers
        assert server.request_count("POST", "/api/leads") == 1
        assert [lead["id"] for lead in server.leads] == [created["id"]]
        assert len(waits) == 1
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def refusing() -> Iterator[socket.socket]:
    """A loopback socket that is bound but never listens: connecting to its port is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])
