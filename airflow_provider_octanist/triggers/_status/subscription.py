"""
One status trigger's place in a shared feed, and what the feed tells it (``News``).

Everything that changes a ``Subscription`` is a method here: the feed and its deletion check
call them, the trigger only reads the ``News`` its feed takes out of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.statuses import status_of

if TYPE_CHECKING:
    from datetime import datetime

    from airflow_provider_octanist._keyset.cursor import Change, Cursor, RawLead


def as_lead(row: RawLead) -> dict[str, Any]:
    """A lead row of the list with its status in canonical spelling, as ``GET /leads/{id}`` gives it."""
    status = status_of(row)
    if status is not None and status != row.get("status"):
        return {**row, "status": status}
    return dict(row)


class Wake:
    """
    ``asyncio.Event`` for the one trigger that waits on it, without the Event's queue of waiters.

    A triggerer holds one per waiting sensor; an empty ``deque`` alone is over 600 bytes.
    """

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Set the flag and end the wait, if the trigger waits."""
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        """Clear the flag: the next ``wait`` waits for the next ``set``."""
        self._flag = False

    async def wait(self) -> None:
        """Return once the flag is set (at once if it is)."""
        if self._flag:
            return
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None


@dataclass(frozen=True)
class News:
    """
    What a feed told one trigger since it last asked: taken out of its ``Subscription`` at once.

    :param lead: the newest row of the lead handed out (canonical status), if any.
    :param check: the feed asks the trigger to read its lead once (it may have been deleted).
    :param failures: the feed's polls in a row that failed with transient errors (0 after a good one).
    :param last_error: the last of those failures.
    :param fatal: an error that ends polling (a rejected key, a bug in the poll loop).
    :param fallback: why the feed cannot serve the trigger: it polls its lead on its own.
    :param polls: the feed's successful polls since the trigger joined.
    """

    lead: dict[str, Any] | None = None
    check: bool = False
    failures: int = 0
    last_error: str | None = None
    fatal: BaseException | None = None
    fallback: str | None = None
    polls: int = 0


class Subscription:
    """
    One trigger's place in a feed: what the feed has told it since it joined.

    The feed writes through the methods below; the trigger reads ``News`` taken after ``wake``
    was set; nothing here is awaited by the feed.

    :param lead_id: the lead the trigger waits on.
    :param since: the lower bound the trigger needs (see ``feed``).
    :param seen_at: ``updatedAt`` of the state the trigger read itself; older rows are stale.
    :param created_at: the lead's ``createdAt`` (``None`` when unknown), for the deletion check.
    :param read_from: when (``time.monotonic()``) the trigger's read of its lead began.
    """

    __slots__ = (
        "check",
        "covered",
        "created_at",
        "doubt",
        "failures",
        "fallback",
        "fatal",
        "last_error",
        "lead",
        "lead_id",
        "newest",
        "read_from",
        "seen_at",
        "since",
        "wake",
    )

    def __init__(
        self,
        lead_id: str,
        since: Cursor,
        seen_at: datetime | None,
        *,
        created_at: datetime | None = None,
        read_from: float = float("-inf"),
    ) -> None:
        self.lead_id = lead_id
        self.since = since
        self.seen_at = seen_at
        self.created_at = created_at
        self.read_from = read_from
        self.check = False
        """The feed asks the trigger to read its lead once (it may have been deleted)."""
        self.covered = False
        """The feed's deletion count is known to include the lead (see ``deletions``)."""
        self.doubt = False
        """The last read the feed asked for failed: it asks again at the next poll."""
        self.newest = seen_at
        """``updatedAt`` of the newest row handed out (or read), for counting news."""
        self.wake = Wake()
        self.lead: RawLead | None = None
        """The newest row of the lead the feed handed out and the trigger has not taken yet."""
        self.failures = 0
        """Feed polls in a row that failed with transient errors since the last good one."""
        self.last_error: str | None = None
        self.fatal: BaseException | None = None
        """A non-transient error of the feed's list call (a rejected key): polling cannot go on."""
        self.fallback: str | None = None
        """Why the feed cannot serve this trigger; it polls on its own from then on."""

    # -- what the feed hands over ------------------------------------------------------------------

    def deliver(self, change: Change) -> bool:
        """
        Hand ``change`` over unless it is older than what the trigger has; whether it is newer.

        A row as old as the newest one handed out is handed over again (two changes may share a
        millisecond) but does not count as news.
        """
        if self.seen_at is not None and change.at < self.seen_at:
            return False
        # Only counted: ``seen_at`` stays what the trigger read, so a row dated in the future
        # cannot make the lead's later, real changes look stale.
        news = self.newest is None or change.at > self.newest
        if news:
            self.newest = change.at
        self.lead = change.lead
        self.wake.set()
        return news

    def poll_failed(self, error: str) -> None:
        """One more feed poll failed with a transient error."""
        self.failures += 1
        self.last_error = error
        self.wake.set()

    def polls_recovered(self) -> None:
        """A good poll came after failed ones: the count of failures in a row starts again."""
        self.failures = 0

    def stop(self, exc: BaseException) -> None:
        """Polling cannot go on (a rejected key, a bug in the poll loop): the trigger reports ``exc``."""
        self.fatal = exc
        self.wake.set()

    def fall_back(self, reason: str) -> None:
        """The feed cannot serve the trigger: it polls its lead on its own, saying ``reason``."""
        self.fallback = reason
        self.wake.set()

    # -- the deletion check ------------------------------------------------------------------------

    def set_covered(self, covered: bool) -> None:
        """Whether the deletion count is known to include the lead (on joining a feed)."""
        self.covered = covered

    def ask_to_check(self) -> None:
        """Ask the trigger to read its lead once (the deletion count changed, or it is unverified)."""
        self.check = True
        self.wake.set()

    def checked(self, *, ok: bool) -> None:
        """The trigger read its lead as asked: it exists (``ok``), or the read failed."""
        self.covered = self.covered or ok
        self.doubt = not ok

    # -- the trigger's side --------------------------------------------------------------------------

    def take(self, polls: int) -> News:
        """
        What the feed said since the last ``take``; the lead row and the ask to read are taken out.

        The wake flag is cleared first: whatever the feed says from now on (while the trigger
        reads its lead, say) ends the trigger's next ``wait`` at once.

        :param polls: the feed's successful polls since the trigger joined.
        """
        self.wake.clear()
        row, self.lead = self.lead, None
        check, self.check = self.check, False
        return self.status(polls, lead=None if row is None else as_lead(row), check=check)

    def status(self, polls: int, *, lead: dict[str, Any] | None = None, check: bool = False) -> News:
        """What the feed says of its polls now, without taking the lead row or the ask to read."""
        return News(
            lead=lead,
            check=check,
            failures=self.failures,
            last_error=self.last_error,
            fatal=self.fatal,
            fallback=self.fallback,
            polls=polls,
        )

    async def wait(self, timeout: float) -> None:
        """Wait until the feed says something, or ``timeout`` seconds (which sets the flag)."""
        timer = asyncio.get_running_loop().call_later(timeout, self.wake.set)
        try:
            await self.wake.wait()
        finally:
            timer.cancel()
