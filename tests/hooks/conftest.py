"""Fixtures of the hook tests: one test drives the sync hook and its async twin alike."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ASYNC_TRANSPORTS

from airflow_provider_octanist.hooks import octanist as hook_module
from airflow_provider_octanist.hooks._transport import shared_client
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook, OctanistHook

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer

CONN_ENV = "AIRFLOW_CONN_OCTANIST_DEFAULT"
FAST = {"retry_backoff": 0.01}
"""Extras every test connection gets: retries wait 5-10 ms (and the waits are recorded, see ``waits``)."""


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """
    The seconds each hook waited before a retry, in order; the hooks do not really wait in tests.

    Both hooks wait through the module-level ``sleep``/``async_sleep``; recording them keeps the
    suite fast (a ``Retry-After: 2`` costs nothing) and lets tests assert the policy exactly.
    """
    recorded: list[float] = []

    def record(seconds: float) -> None:
        recorded.append(seconds)

    async def record_async(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(hook_module, "sleep", record)
    monkeypatch.setattr(hook_module, "async_sleep", record_async)
    return recorded


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch, octanist_server: FakeOctanistServer) -> Callable[..., None]:
    """
    Point ``octanist_default`` at the fake server with the given fields and extras.

    ``connect(password="other")`` changes a field, ``connect(timeout=0.2)`` adds an extra.
    """

    def apply(*, host: str | None = None, password: str | None = None, **extra: Any) -> None:
        conn = {
            "conn_type": "octanist",
            "host": octanist_server.url if host is None else host,
            "password": octanist_server.api_key if password is None else password,
            "extra": {**FAST, **extra},
        }
        monkeypatch.setenv(CONN_ENV, json.dumps(conn))

    apply()
    return apply


class Twin:
    """
    One of the two hooks behind one calling convention, so a test states a behaviour once.

    ``twin.get_lead("x")`` calls the sync hook, or runs the async hook's coroutine to completion
    on an event loop owned by this object (one loop for the test, so the async hook keeps its
    connections between calls as it does in a trigger). Async iterators come back as lists.
    """

    def __init__(self, kind: str, **hook_kwargs: Any) -> None:
        self.kind = kind
        """``sync`` or ``async``."""
        self.is_async = kind == "async"
        self.loop = asyncio.new_event_loop() if self.is_async else None
        self.hook: OctanistHook | OctanistAsyncHook = (
            OctanistAsyncHook(**hook_kwargs) if self.is_async else OctanistHook(**hook_kwargs)
        )

    def run(self, value: Any) -> Any:
        """Finish what the async hook returned (a coroutine or an async iterator)."""
        if self.loop is None:
            return value
        if inspect.isawaitable(value):
            return self.loop.run_until_complete(value)
        if isinstance(value, AsyncIterator):
            return self.loop.run_until_complete(_collect(value))
        return value

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.hook, name)
        return lambda *args, **kwargs: self.run(method(*args, **kwargs))

    def close(self) -> None:
        if isinstance(self.hook, OctanistAsyncHook):
            assert self.loop is not None
            self.loop.run_until_complete(self.hook.aclose())
            self.loop.close()
        else:
            self.hook.close()


async def _collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.fixture(params=["sync", *(f"async-{transport}" for transport in ASYNC_TRANSPORTS)])
def make_twin(
    request: pytest.FixtureRequest, connect: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Twin]]:
    """
    A factory of :class:`Twin` hooks on ``octanist_default``, closed after the test.

    Sync, then async on each transport it can use here (``async-aiohttp``, ``async-httpx``).
    """
    kind, _, transport = str(request.param).partition("-")
    monkeypatch.setattr(shared_client, "PREFER_AIOHTTP", transport == "aiohttp")
    made: list[Twin] = []

    def make(**hook_kwargs: Any) -> Twin:
        twin = Twin(kind, **hook_kwargs)
        made.append(twin)
        return twin

    yield make
    for twin in made:
        twin.close()


@pytest.fixture
def hook(make_twin: Callable[..., Twin]) -> Twin:
    """The sync hook, then (second run of the test) the async hook, on ``octanist_default``."""
    return make_twin()


@pytest.fixture
def sync_hook(connect: Callable[..., None]) -> Iterator[OctanistHook]:
    """An :class:`OctanistHook` on ``octanist_default`` (for the write methods, which are sync only)."""
    with OctanistHook() as hook:
        yield hook
