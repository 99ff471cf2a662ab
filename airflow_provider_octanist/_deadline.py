"""
A deadline on one await, for both hooks and the change feed: ``within(seconds, awaitable)``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Awaitable

T = TypeVar("T")

RECANCEL_INTERVAL = 0.1
"""Python 3.10: seconds between the cancellations of a request that outlived its deadline."""


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """
    Await ``awaitable`` for at most ``seconds`` (``asyncio.TimeoutError`` after that).

    ``asyncio.timeout`` where it exists: ``wait_for`` of Python 3.11 can swallow a cancellation
    that arrives as the awaited request completes, which would keep a cancelled trigger running.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    # Python 3.10 has no asyncio.timeout, and its wait_for runs the request in a task of its own
    # that a cancelled trigger can be left waiting on. Cancel this task from a timer instead, as
    # asyncio.timeout does, and tell our own expiry from a cancellation that came from outside.
    task = asyncio.current_task()
    if task is None:  # awaited outside a task (never in a triggerer): nothing of ours to cancel
        return await asyncio.wait_for(awaitable, seconds)
    loop = asyncio.get_running_loop()
    expired = False
    timer: asyncio.TimerHandle

    def expire() -> None:
        nonlocal expired, timer
        expired = True
        task.cancel()
        # Before 3.11 a task cannot count its cancellations, so anyio (under httpx) takes one that
        # reaches it inside a task group (a connect's) for its own and swallows it: the request
        # then ran on, undeadlined, for as long as the server dripped. Cancel again until it stops.
        timer = loop.call_later(RECANCEL_INTERVAL, expire)

    timer = loop.call_later(max(seconds, 0.0), expire)
    try:
        return await awaitable
    except asyncio.CancelledError:
        if expired:
            raise asyncio.TimeoutError from None
        raise
    finally:
        timer.cancel()
