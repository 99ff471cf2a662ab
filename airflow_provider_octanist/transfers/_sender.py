"""
The write-back's concurrent sender: one update per row from a pool of threads over one hook, never
more in flight than a window that halves on 429 and widens as updates go through (AIMD).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.transfers._outcomes import (
    AMBIGUOUS,
    FAILED,
    INVALID,
    NOT_FOUND,
    NOT_SENT,
    UPDATED,
    Item,
    Outcome,
    Pending,
    error_of,
    not_sent,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from concurrent.futures import Future

    from airflow_provider_octanist.hooks.octanist import OctanistHook

WAIT_SECONDS = 1.0
"""Seconds the sender waits for an answer before it calls ``waiting`` (a state's heartbeat)."""


def send_one(hook: OctanistHook, row: int, lead: Mapping[str, Any], arguments: Mapping[str, Any]) -> Outcome:
    """
    Send one row's update; return its outcome. A rejected key is no row's fault: it is raised.

    :param hook: the hook shared by every sending thread.
    :param row: the row's number (1-based), for the report.
    :param lead: the column that names the lead, for the report.
    :param arguments: ``update_lead``'s arguments.
    """
    from airflow_provider_octanist.exceptions import (
        OctanistAuthError,
        OctanistConflictError,
        OctanistError,
        OctanistNotFoundError,
        OctanistRateLimitError,
        OctanistValidationError,
    )

    try:
        answer = hook.update_lead(**arguments)
    except OctanistAuthError:
        raise
    except OctanistError as exc:
        if isinstance(exc, OctanistNotFoundError):
            outcome = NOT_FOUND
        elif isinstance(exc, OctanistConflictError):
            outcome = AMBIGUOUS
        elif isinstance(exc, OctanistValidationError):
            outcome = INVALID  # Octanist refused what the checks here let through
        else:
            outcome = FAILED
        reached = not isinstance(exc, OctanistRateLimitError) and getattr(
            exc, "may_have_reached_server", True
        )
        return Outcome(
            row, outcome, lead, error=error_of(exc), may_have_applied=outcome == FAILED and reached
        )
    updated = answer.get("leadsUpdated")
    lead_id = answer.get("leadId")
    return Outcome(
        row,
        UPDATED,
        lead,
        lead_id=lead_id if isinstance(lead_id, str) else None,
        leads_updated=updated if isinstance(updated, int) and not isinstance(updated, bool) else None,
    )


class Window:
    """
    How many updates may be in flight: additive increase, multiplicative decrease, as TCP does.

    The window starts at ``ceiling``. A 429 halves it (once per round of requests: the 429s of one
    burst are one signal), never below 1; each update that goes through widens it by
    ``1 / size``, about one more request in flight per round, never above ``ceiling``. Not thread
    safe by itself: the ``Sender`` holds a lock around it.

    :param ceiling: the widest window.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.size = float(ceiling)
        self.rate_limited = 0
        """429 answers seen."""
        self.narrowest = ceiling
        """The narrowest the window has been."""
        self.since_cut = ceiling
        """Updates through since the last cut: a first 429 always cuts."""

    def rate_limited_answer(self) -> None:
        """Octanist answered 429: count it, and halve the window unless this round was cut already."""
        self.rate_limited += 1
        if self.since_cut >= self.size:
            self.size = max(1.0, self.size / 2)
            self.narrowest = min(self.narrowest, int(self.size))
            self.since_cut = 0

    def went_through(self) -> None:
        """An update was applied: widen the window by about one request per round."""
        self.since_cut += 1
        self.size = min(float(self.ceiling), self.size + 1 / self.size)

    @property
    def room(self) -> int:
        """Updates that may be in flight now (at least one)."""
        return max(1, int(self.size))


class Sender:
    """
    Sends updates from a pool of threads over one hook, never more in flight than its ``Window``.

    The requests themselves are retried by the hook, which honours ``Retry-After``; the sender
    only decides how many go at once.

    :param hook: the hook to send with; its ``on_rate_limited`` is set to the sender's.
    :param max_concurrency: the widest window.
    """

    def __init__(self, hook: OctanistHook, max_concurrency: int) -> None:
        self.hook = hook
        self.ceiling = max_concurrency
        self._window = Window(max_concurrency)
        self._lock = threading.Lock()
        hook.on_rate_limited = self._on_rate_limited

    @property
    def window(self) -> float:
        """The updates that may be in flight now."""
        return self._window.size

    @property
    def rate_limited(self) -> int:
        """429 answers seen."""
        return self._window.rate_limited

    @property
    def narrowest(self) -> int:
        """The narrowest the window has been."""
        return self._window.narrowest

    def _on_rate_limited(self, retry_after: float | None) -> None:
        # Called from the sending threads, by the hook, on every 429 (retried or not).
        with self._lock:
            self._window.rate_limited_answer()

    def went_through(self) -> None:
        """An update was applied (called in the sending thread of ``run``)."""
        with self._lock:
            self._window.went_through()

    def room(self) -> int:
        """Updates that may be in flight now."""
        with self._lock:
            return self._window.room

    def run(
        self,
        items: Iterable[Item],
        record: Callable[[Outcome], None],
        *,
        before_send: Callable[[int], None] | None = None,
        waiting: Callable[[], None] | None = None,
    ) -> Exception | None:
        """
        Send every ``(row, lead, arguments)`` of ``items`` and ``record`` each outcome, in this thread.

        An ``Outcome`` among the items (a row that is not sent) is recorded as it comes. Items are
        drawn only when the window has room, so no more than the window is ever held.
        ``before_send(row)`` is called right before a row's update goes out (a state writes ahead
        there), ``waiting()`` about every second while no answer comes (its heartbeat); both in
        this thread, and an error of either stops the sending as an error reading ``items`` does.

        Returns what stopped the sending before the end of ``items``, or ``None``: a refused key
        (its rows are recorded ``not_sent``), an error reading ``items``, any other error of a
        sending thread (its row is recorded ``failed``: it may have gone through). The updates
        already in flight are waited for and recorded first; no item is drawn after it.
        """
        from concurrent.futures import ThreadPoolExecutor

        # The connection is read and the session opened here, once, before any thread needs them:
        # a task may look a connection up from its own thread only (Airflow 3.0's task runner
        # answers one request at a time), and threads racing to open the session would each open one.
        self.hook.settings  # noqa: B018 - read for its side effect
        self.hook.get_conn()
        flight = _InFlight(self, record, waiting)
        with ThreadPoolExecutor(max_workers=self.ceiling, thread_name_prefix="octanist-write-back") as pool:
            try:
                for item in items:
                    if isinstance(item, Outcome):
                        record(item)
                        continue
                    while len(flight.futures) >= self.room():
                        flight.collect()
                    if flight.stop is None and before_send is not None:
                        try:
                            before_send(item[0])
                        except Exception as exc:
                            flight.stopped(exc)
                    if flight.stop is not None:
                        record(not_sent(item, f"not sent: the run stopped ({flight.stop})"))
                        break
                    flight.futures[pool.submit(send_one, self.hook, *item)] = item
            except Exception as exc:  # the rows could not be read on (or the task was stopped)
                flight.stopped(exc)
            while flight.futures:
                flight.collect()
        return flight.stop


class _InFlight:
    """
    The updates of one ``Sender.run`` not answered yet, and the first error that stops the run.

    :param sender: the sender whose window each update that goes through widens.
    :param record: takes each outcome, in the run's thread.
    :param waiting: called about every second while no answer comes (a state's heartbeat).
    """

    def __init__(
        self, sender: Sender, record: Callable[[Outcome], None], waiting: Callable[[], None] | None
    ) -> None:
        self.sender = sender
        self.record = record
        self.waiting = waiting
        self.futures: dict[Future[Outcome], Pending] = {}
        self.stop: Exception | None = None

    def stopped(self, exc: Exception) -> None:
        """Keep the first error that stops the run."""
        self.stop = self.stop or exc

    def collect(self) -> None:
        """Wait for at least one answer, then record every answer that has come."""
        from concurrent.futures import FIRST_COMPLETED, wait

        from airflow_provider_octanist.exceptions import OctanistAuthError

        done: set[Future[Outcome]] = set()
        while not done:
            done, _ = wait(self.futures, timeout=WAIT_SECONDS, return_when=FIRST_COMPLETED)
            if not done and self.waiting is not None:
                try:
                    self.waiting()
                except Exception as exc:
                    self.stopped(exc)
        for future in done:
            row, lead, _arguments = self.futures.pop(future)
            try:
                outcome = future.result()
            except Exception as exc:
                self.stopped(exc)
                refused = isinstance(exc, OctanistAuthError)
                outcome = Outcome(
                    row,
                    NOT_SENT if refused else FAILED,
                    lead,
                    error=error_of(exc),
                    may_have_applied=not refused,
                )
            if outcome.outcome == UPDATED:
                self.sender.went_through()
            self.record(outcome)
