"""The API key never shows up in a log line (any level, any library), an exception, a repr or a URL."""

from __future__ import annotations

import asyncio
import logging
import pickle
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.exceptions import OctanistError
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook, OctanistHook, _OctanistHookBase

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow_provider_octanist.testing import FakeOctanistServer

KEY = "sk-live-Q7vXk2PzLw9RtY4m"
WRONG_KEY = "sk-live-WRONG-Nq3Jd8Hs5Ue1"
LOGGERS = (
    "",
    "airflow",
    "airflow.task",
    "airflow_provider_octanist",
    "urllib3",
    "requests",
    "httpx",
    "httpcore",
)


@pytest.fixture
def every_log_line(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    """Capture DEBUG and up from the hooks, Airflow and the HTTP libraries, even unpropagated loggers."""
    # Airflow 3 gives hooks a structlog logger that renders straight to the console at INFO; a
    # stdlib logger at DEBUG shows every line the hook code writes, whatever renders it later.
    monkeypatch.setattr(_OctanistHookBase, "_log", logging.getLogger("airflow_provider_octanist.hooks.test"))
    attached = []
    for name in LOGGERS:
        logger = logging.getLogger(name)
        caplog.set_level(logging.DEBUG, logger=name)
        if name and not logger.propagate:
            logger.addHandler(caplog.handler)
            attached.append(logger)
    yield caplog
    for logger in attached:
        logger.removeHandler(caplog.handler)


def _exercise_sync(server: FakeOctanistServer, errors: list[BaseException]) -> list[Any]:
    lead = server.add_lead()
    seen: list[Any] = []
    with OctanistHook() as hook:
        seen += [hook, hook.settings, hook.test_connection()]
        server.inject("status", status=503)
        seen.append(hook.get_lead(lead["id"]))
        seen.append(hook.list_leads_page(1, status="open"))
        seen.append(hook.create_lead(email="a@example.com"))
        server.inject("drop", method="POST")
        _collect(errors, lambda: hook.create_lead(email="b@example.com"))
        _collect(errors, lambda: hook.get_lead("lead_missing"))
    with OctanistHook(timeout=0.1, max_retries=0) as slow:
        server.inject("delay", seconds=2)
        _collect(errors, slow.get_stats)
    return seen


def _exercise_async(server: FakeOctanistServer, errors: list[BaseException]) -> list[Any]:
    lead = server.add_lead()

    async def run() -> list[Any]:
        seen: list[Any] = []
        async with OctanistAsyncHook() as hook:
            seen += [hook, await hook.get_settings(), await hook.test_connection()]
            server.inject("status", status=429, retry_after=1)
            seen.append(await hook.get_lead(lead["id"]))
            seen.append(await hook.list_leads(max_results=1))
            try:
                await hook.get_lead("lead_missing")
            except OctanistError as exc:
                errors.append(exc)
        return seen

    return asyncio.run(run())


def _collect(errors: list[BaseException], call: Callable[[], Any]) -> None:
    with pytest.raises(OctanistError) as caught:
        call()
    errors.append(caught.value)


def _texts_of(value: Any) -> list[str]:
    texts = [str(value), repr(value)]
    if isinstance(value, BaseException):
        texts += [repr(value.args), repr(vars(value)), repr(pickle.loads(pickle.dumps(value)))]
        texts += _texts_of(value.__cause__) if value.__cause__ else []
        texts += _texts_of(value.__context__) if value.__context__ else []
    return texts


def test_the_key_is_in_no_log_line_exception_or_repr(
    every_log_line: pytest.LogCaptureFixture,
    connect: Callable[..., None],
    octanist_server: FakeOctanistServer,
    monkeypatch: pytest.MonkeyPatch,
    async_transport: str,
) -> None:
    # The capture itself must be able to see a leak: nothing in this process masks log lines.
    logging.getLogger("airflow_provider_octanist.canary").debug("canary %s", KEY)
    assert KEY in every_log_line.text, "the log capture would not see a leaked key"
    every_log_line.clear()

    monkeypatch.setattr(octanist_server, "api_key", KEY)
    connect(password=KEY)
    errors: list[BaseException] = []
    seen = _exercise_sync(octanist_server, errors) + _exercise_async(octanist_server, errors)

    records = every_log_line.records
    assert len(errors) == 4
    # The capture really covered the HTTP libraries' debug output and the hooks' own warnings.
    names = {record.name.split(".")[0] for record in records}
    # (The async hook sends through its transport, below the httpx client that logs each request;
    # httpx's logs each step of a request, aiohttp's nothing.)
    assert {"urllib3", *(["httpcore"] if async_transport == "httpx" else [])} <= names, names
    assert any("retry 1 of 3" in record.getMessage() for record in records)
    assert any("GET /leads/lead_missing -> 404" in record.getMessage() for record in records)
    for record in records:
        line = record.getMessage() + repr(record.args) + (record.exc_text or "")
        assert KEY not in line, f"{record.name} logged the API key: {line}"
    for value in seen + errors:
        for text in _texts_of(value):
            assert KEY not in text, f"{type(value).__name__} shows the API key: {text}"


def test_a_rejected_key_is_not_echoed_in_the_error(
    every_log_line: pytest.LogCaptureFixture,
    connect: Callable[..., None],
    octanist_server: FakeOctanistServer,
) -> None:
    connect(password=WRONG_KEY)

    ok, message = OctanistHook().test_connection()
    with pytest.raises(OctanistError) as caught:
        OctanistHook().get_lead("lead_1")
    async_ok, async_message = asyncio.run(OctanistAsyncHook().test_connection())

    assert (ok, async_ok) == (False, False)
    for text in [message, async_message, *_texts_of(caught.value), every_log_line.text]:
        assert WRONG_KEY not in text
