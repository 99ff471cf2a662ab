"""
Which connections' API refused the status feed's listing lately, per event loop and poll interval.

Joiners of a refused connection poll their leads on their own for ``UNSERVABLE_FOR`` seconds,
whether the refusal came from a feed's poll or from the listing that looks for a joining lead.
"""

from __future__ import annotations

import asyncio
import time

UNSERVABLE_FOR = 3600.0
"""Seconds that a feed the API refused stays refused: joiners poll on their own meanwhile."""

FeedKey = tuple[asyncio.AbstractEventLoop, str, float]
"""One feed: its event loop, connection id and poll interval."""

_REFUSED: dict[FeedKey, tuple[str, float]] = {}


def remember_refusal(key: FeedKey, reason: str) -> None:
    """Joiners of this loop, connection and interval poll alone for :data:`UNSERVABLE_FOR` seconds."""
    _REFUSED[key] = (reason, time.monotonic())


def recent_refusal(key: FeedKey) -> str | None:
    """Why the API refused this feed within :data:`UNSERVABLE_FOR` seconds, if it did."""
    entry = _REFUSED.get(key)
    if entry is None:
        return None
    reason, since = entry
    if time.monotonic() - since > UNSERVABLE_FOR:
        del _REFUSED[key]
        return None
    return reason
