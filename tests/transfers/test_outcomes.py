"""What can happen to one write-back row: its line in the report and its words in a failed task's error."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_octanist.exceptions import OctanistNotFoundError
from airflow_provider_octanist.transfers._outcomes import Outcome, error_of, not_sent


@pytest.mark.parametrize(
    ("outcome", "line"),
    [
        (Outcome(1, "valid"), {"row": 1, "outcome": "valid"}),
        (
            Outcome(2, "updated", {"email": "a@x.com"}, lead_id="lead_1", leads_updated=1),
            {
                "row": 2,
                "outcome": "updated",
                "lead": {"email": "a@x.com"},
                "lead_id": "lead_1",
                "leads_updated": 1,
            },
        ),
        (
            Outcome(
                None, "given_up", {"id": "lead_1"}, error={"message": "given up"}, carried_since="2026-03-01"
            ),
            {
                "row": None,
                "outcome": "given_up",
                "carried_since": "2026-03-01",
                "lead": {"id": "lead_1"},
                "error": {"message": "given up"},
            },
        ),
        (
            Outcome(3, "invalid", {"phone": Decimal("31600")}),
            {"row": 3, "outcome": "invalid", "lead": {"phone": "31600"}},
        ),
    ],
    ids=["nothing but the row", "an update", "a row carried over", "a value JSON cannot hold, as text"],
)
def test_a_report_line_holds_only_what_the_outcome_says(outcome: Outcome, line: dict[str, Any]) -> None:
    assert outcome.line() == line


@pytest.mark.parametrize(
    ("outcome", "words"),
    [
        (
            Outcome(4, "not_found", {"id": "lead_9"}, error={"message": "Lead not found."}),
            "row 4 (id lead_9): not_found: Lead not found",
        ),
        (Outcome(5, "invalid"), "row 5: invalid"),
        (Outcome(None, "given_up", {"email": "a@x.com"}), "a row carried over (email a@x.com): given_up"),
    ],
    ids=["with a reason", "without one", "carried over"],
)
def test_a_failed_task_names_a_row_by_number_lead_outcome_and_reason(outcome: Outcome, words: str) -> None:
    assert outcome.describe() == words


def test_an_error_in_the_report_keeps_what_octanist_said_and_leaves_out_what_it_lacks() -> None:
    error = error_of(OctanistNotFoundError("Lead not found", status_code=404, request_id="req_1"))

    assert error == {"message": "Lead not found (404, request req_1)", "status": 404, "request_id": "req_1"}
    assert error_of(ValueError("no answer")) == {"message": "no answer"}


def test_a_row_read_after_a_stop_is_not_sent_unless_it_was_invalid_already() -> None:
    invalid = Outcome(1, "invalid", error={"message": "names no lead"})

    assert not_sent(invalid, "not sent: the run stopped") is invalid
    assert not_sent((2, {"id": "lead_1"}, {"lead_id": "lead_1"}), "not sent: the run stopped") == Outcome(
        2, "not_sent", {"id": "lead_1"}, error={"message": "not sent: the run stopped"}
    )
