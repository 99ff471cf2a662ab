"""
The server's clock, as a feed reads it from its answers (``meta.timestamp``).

A feed works in the server's time: every ``updatedAt`` it compares is stamped by that clock. A
server writing local time as UTC is hours off this machine and still right about its own stamps,
so an offset alone is no reason to doubt it. Two things are: an offset no time zone explains
("1970-01-01"), and a clock that stands still while this machine's moves (a cached answer).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from airflow_provider_octanist._timestamps import utc_now

if TYPE_CHECKING:
    from collections.abc import Callable

CLOCK_TRUSTED_WITHIN = timedelta(hours=26)
"""A ``meta.timestamp`` further than this from this machine's clock is not a clock: every time zone
written as UTC (UTC-12 to UTC+14) lies within it."""

STANDING_STILL_AFTER = 30.0
"""Seconds of this machine's time over which a believed server clock must have moved on."""


def believable(server_time: datetime | None, local_now: datetime | None = None) -> datetime | None:
    """
    ``server_time`` (one answer's ``meta.timestamp``) when one answer alone can be trusted as a clock.

    Any offset a time zone can explain is the server's own truth; one beyond
    :data:`CLOCK_TRUSTED_WITHIN` is ``None``.
    """
    if server_time is None:
        return None
    now = local_now if local_now is not None else utc_now()
    return server_time if abs(server_time - now) <= CLOCK_TRUSTED_WITHIN else None


class ServerClock:
    """
    One feed's reading of the server's clock across its answers.

    ``read`` believes a ``meta.timestamp`` within :data:`CLOCK_TRUSTED_WITHIN` of this machine's
    clock unless it stood still: when :data:`STANDING_STILL_AFTER` seconds or more passed here
    since the last believed reading, the server's clock must have moved at least half as far.
    ``now`` is the server's time: the latest believed reading carried forward by this machine's
    clock (the furthest such estimate: a reading that arrived late says less), or this machine's
    clock when none was ever believed.

    :param monotonic: this machine's monotonic seconds (tests pass their own).
    :param wall: this machine's clock, in UTC (tests pass their own).
    """

    __slots__ = ("_anchor", "_latest", "_monotonic", "_wall", "why_not")

    def __init__(
        self, monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = utc_now
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self._anchor: tuple[float, datetime] | None = None
        """The reading the standing-still check measures from (moved on every 30 s or more)."""
        self._latest: tuple[float, datetime] | None = None
        """The reading that puts the server's time furthest on, and when it was made."""
        self.why_not: str | None = None
        """Why the last reading was not believed (``None`` when it was)."""

    def read(self, server_time: datetime | None) -> datetime | None:
        """``server_time`` if it is believed as the server's clock, else ``None`` (see ``why_not``)."""
        self.why_not = None
        if server_time is None:
            return None
        if believable(server_time, self._wall()) is None:
            self.why_not = f"more than {CLOCK_TRUSTED_WITHIN} away from this machine's clock"
            return None
        mono = self._monotonic()
        if self._anchor is not None:
            then, at = self._anchor
            elapsed = mono - then
            if elapsed >= STANDING_STILL_AFTER and server_time - at < timedelta(seconds=elapsed / 2):
                self.why_not = f"it moved {(server_time - at).total_seconds():.0f} s in {elapsed:.0f} s"
                return None
        if self._anchor is None or mono - self._anchor[0] >= STANDING_STILL_AFTER:
            self._anchor = (mono, server_time)
        if self._latest is None or server_time >= self._carried(self._latest, mono):
            self._latest = (mono, server_time)
        return server_time

    @staticmethod
    def _carried(reading: tuple[float, datetime], mono: float) -> datetime:
        then, at = reading
        return at + timedelta(seconds=mono - then)

    @property
    def believed_once(self) -> bool:
        """Whether any reading was believed (``now`` then follows the server's clock)."""
        return self._anchor is not None

    def now(self) -> datetime:
        """The server's time by the last believed reading, or this machine's clock without one."""
        if self._latest is None:
            return self._wall()
        return self._carried(self._latest, self._monotonic())
