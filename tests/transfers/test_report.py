"""A write-back's accounting: the tally of outcomes, the summary's sum, and progress in the log."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_octanist.transfers._outcomes import Outcome
from airflow_provider_octanist.transfers._report import Progress, Tally

# -- progress -----------------------------------------------------------------------------------


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


def test_progress_is_logged_at_most_once_per_interval_with_rows_rate_and_failures() -> None:
    now = [100.0]
    log = RecordingLog()
    progress = Progress(log, 5.0, clock=lambda: now[0])
    tally = Tally()
    for second in range(12):
        now[0] = 100.0 + second
        tally.add(Outcome(second + 1, "updated" if second % 4 else "not_found"))
        progress.tick(tally)

    assert log.lines == [
        "Write-back: 6 row(s) done in 5 s (1 rows/s): 4 updated, 2 not applied so far.",
        "Write-back: 11 row(s) done in 10 s (1 rows/s): 8 updated, 3 not applied so far.",
    ]


SUM = "rows + carried_over = updated + unchanged + not_found + invalid + failed + unknown"


@pytest.mark.parametrize(
    ("outcomes", "sent", "not_applied", "reconciliation"),
    [
        ([], 0, 0, f"{SUM}: 0 + 0 = 0 + 0 + 0 + 0 + 0 + 0 (adds up)"),
        (["updated", "unchanged", "not_found"], 1, 1, f"{SUM}: 3 + 0 = 1 + 1 + 1 + 0 + 0 + 0 (adds up)"),
        (["failed", "unknown", "invalid"], 2, 3, f"{SUM}: 3 + 0 = 0 + 0 + 0 + 1 + 1 + 1 (adds up)"),
        (
            ["updated", "ambiguous", "not_sent"],
            1,
            1,
            f"{SUM} + ambiguous + not_sent: 3 + 0 = 1 + 0 + 0 + 0 + 0 + 0 + 1 + 1 (adds up)",
        ),
    ],
    ids=["nothing", "applied or not", "sent or may have been", "rarer outcomes join the sum"],
)
def test_the_tally_counts_what_was_sent_and_not_applied_and_says_how_the_rows_add_up(
    outcomes: list[str], sent: int, not_applied: int, reconciliation: str
) -> None:
    tally = Tally()
    for number, outcome in enumerate(outcomes, start=1):
        tally.add(Outcome(number, outcome))

    assert (tally.sent, tally.not_applied, tally.reconciliation()) == (sent, not_applied, reconciliation)


def test_a_row_carried_over_is_counted_apart_from_the_rows_read() -> None:
    tally = Tally()
    tally.add(Outcome(1, "updated", leads_updated=3))
    tally.add(Outcome(None, "given_up", carried_since="2026-03-01T00:00:00Z"))

    summary = tally.summary(dry_run=False, report=None)
    assert (summary["rows"], summary["carried_over"], summary["leads_updated"]) == (1, 1, 3)
    assert summary["reconciliation"].endswith(": 1 + 1 = 1 + 0 + 0 + 0 + 0 + 0 + 1 (adds up)")
