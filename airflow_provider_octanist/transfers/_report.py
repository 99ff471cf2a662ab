"""
A write-back's accounting: every row's outcome counted (``Tally``), its summary and sum, the report
of one JSON line per row (``Recorder``), and progress in the task log (``Progress``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_octanist.transfers._outcomes import (
    AMBIGUOUS,
    FAILED,
    GIVEN_UP,
    INVALID,
    NOT_APPLIED,
    NOT_FOUND,
    NOT_SENT,
    SENT,
    UNCHANGED,
    UNKNOWN,
    UPDATED,
    VALID,
    Outcome,
)

if TYPE_CHECKING:
    from collections.abc import Callable

RECONCILED = (UPDATED, UNCHANGED, NOT_FOUND, INVALID, FAILED, UNKNOWN)
"""The right side of the summary's sum, always written; the other outcomes join it when they occur."""
ALSO_RECONCILED = (AMBIGUOUS, NOT_SENT, GIVEN_UP, VALID)
PROBLEMS_NAMED = 5
"""Rows named, with their reasons, in the error of a task that fails."""
REPORT_LINES = 1_000
"""Report lines encoded and written together."""


class Tally:
    """Counts the outcomes, keeps the first few problems, and says whether the task must fail."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rows = 0
        """Rows read from the input."""
        self.carried_over = 0
        """Rows taken from the state: carried over from earlier runs."""
        self.leads_updated = 0
        self.rate_limited = 0
        self.problems: list[Outcome] = []
        self.stopped_by: str | None = None
        """Why the run stopped before the end of its input, if it did."""

    def add(self, outcome: Outcome) -> None:
        """Count one row's outcome."""
        if outcome.carried_since is None:
            self.rows += 1
        else:
            self.carried_over += 1
        self.counts[outcome.outcome] += 1
        if outcome.outcome == UPDATED:
            self.leads_updated += outcome.leads_updated if outcome.leads_updated is not None else 1
        elif outcome.outcome in NOT_APPLIED and len(self.problems) < PROBLEMS_NAMED:
            self.problems.append(outcome)

    @property
    def sent(self) -> int:
        """Rows whose update reached Octanist or may have: sending them again could apply them twice."""
        return sum(self.counts[name] for name in SENT)

    @property
    def not_applied(self) -> int:
        """Rows invalid, not found, ambiguous, failed, unknown or given up."""
        return sum(self.counts[name] for name in NOT_APPLIED)

    @property
    def adds_up(self) -> bool:
        """Whether every row read or carried over has exactly one outcome."""
        return self.rows + self.carried_over == sum(self.counts.values())

    def reconciliation(self) -> str:
        """The summary's sum, in words and in numbers: ``rows + carried_over = updated + ...``."""
        terms = [*RECONCILED, *(name for name in ALSO_RECONCILED if self.counts[name])]
        numbers = " + ".join(str(self.counts[name]) for name in terms)
        verdict = "adds up" if self.adds_up else "DOES NOT ADD UP"
        return (
            f"rows + carried_over = {' + '.join(terms)}: {self.rows} + {self.carried_over} = {numbers} "
            f"({verdict})"
        )

    def summary(self, *, dry_run: bool, report: str | None, state: str | None = None) -> dict[str, Any]:
        """The task's summary (XCom): how many rows, and how each ended."""
        return {
            "rows": self.rows,
            "carried_over": self.carried_over,
            "updated": self.counts[UPDATED],
            "unchanged": self.counts[UNCHANGED],
            "not_found": self.counts[NOT_FOUND],
            "ambiguous": self.counts[AMBIGUOUS],
            "invalid": self.counts[INVALID],
            "failed": self.counts[FAILED],
            "unknown": self.counts[UNKNOWN],
            "given_up": self.counts[GIVEN_UP],
            "valid": self.counts[VALID],
            "not_sent": self.counts[NOT_SENT],
            "stopped_by": self.stopped_by,
            "leads_updated": self.leads_updated,
            "rate_limited": self.rate_limited,
            "dry_run": dry_run,
            "report_path": report,
            "state_path": state,
            "reconciliation": self.reconciliation(),
        }


class Progress:
    """
    Logs how far a write-back is, at most once per ``interval`` seconds, so a long one is never silent.

    :param log: the task's logger.
    :param interval: seconds between two lines; 0 logs after every row.
    :param clock: monotonic seconds (injected in tests).
    """

    def __init__(self, log: Any, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._next = self.started + interval

    def tick(self, tally: Tally) -> None:
        """Log a progress line if the interval has passed since the last one."""
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval
        elapsed = now - self.started
        self.log.info(
            "Write-back: %d row(s) done in %.0f s (%.0f rows/s): %d updated, %d not applied so far.",
            tally.rows,
            elapsed,
            tally.rows / elapsed if elapsed > 0 else 0.0,
            tally.counts[UPDATED],
            tally.not_applied,
        )


class Recorder:
    """
    Takes each row's outcome as it comes: settled by the state (if any), counted, written to the
    report (if any) ``REPORT_LINES`` lines at a time, and the progress logged.

    :param tally: counts the outcomes.
    :param progress: logs how far the run is.
    :param settle: the state's ``settle``: the outcome as the state records it; ``None`` without one.
    :param stream: the report's binary stream; ``None`` without a report.
    """

    def __init__(
        self,
        tally: Tally,
        progress: Progress,
        settle: Callable[[Outcome], Outcome] | None,
        stream: IO[bytes] | None,
    ) -> None:
        from airflow_provider_octanist.transfers._formats import JsonLinesWriter

        self.tally = tally
        self.progress = progress
        self.settle = settle
        self.writer = None if stream is None else JsonLinesWriter(stream, None)
        self.lines: list[dict[str, Any]] = []

    def __call__(self, outcome: Outcome) -> None:
        """Record one row's outcome."""
        if self.settle is not None:
            outcome = self.settle(outcome)
        self.tally.add(outcome)
        if self.writer is not None:
            self.lines.append(outcome.line())
            if len(self.lines) >= REPORT_LINES:
                self.writer.write(self.lines)
                self.lines.clear()
        self.progress.tick(self.tally)

    def close(self) -> None:
        """Write the report's last lines and finish it."""
        if self.writer is not None:
            self.writer.write(self.lines)
            self.writer.close()
