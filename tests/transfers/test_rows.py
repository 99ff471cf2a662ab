"""What a write-back row means: the lead it names, the update it carries, and why an invalid one is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.transfers._rows import InvalidRowError, parse_row
from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

from .conftest import patches, report_lines, run, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer


# -- what a row means ---------------------------------------------------------------------------


def test_a_row_names_its_lead_by_id_then_email_then_phone_and_sends_only_that(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    lead = octanist_server.add_lead(email="ada@example.com", phone="+31600")
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            {"id": lead["id"], "email": "other@example.com", "status": "qualified"},
            {"email": "ada@example.com", "phone": "+31999", "value": 5},
            {"phone": "+31600", "note": "Called"},
        ],
    )

    run(ObjectStorageToOctanistLeadsOperator(task_id="write_back", path=path, max_concurrency=1))

    assert patches(octanist_server) == [
        {"id": lead["id"], "status": "qualified"},
        {"email": "ada@example.com", "value": 5},
        {"phone": "+31600", "note": "Called"},
    ]


def test_invalid_rows_are_reported_and_never_sent(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="ok@example.com")
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            {"status": "won", "value": 1},
            {"email": "a@example.com", "status": "closed"},
            {"email": "b@example.com", "status": "won", "lossReason": "Price"},
            {"email": "c@example.com", "value": "a lot"},
            {"email": "d@example.com", "Status": "won"},
            {"email": "e@example.com"},
            {"email": "ok@example.com", "status": "win"},
        ],
    )
    report = tmp_path / "report.jsonl"

    summary = run(
        ObjectStorageToOctanistLeadsOperator(
            task_id="write_back", path=path, report_path=report.as_uri(), max_failed_rows=6
        )
    )

    assert (summary["rows"], summary["invalid"], summary["updated"]) == (7, 6, 1)
    assert patches(octanist_server) == [
        {"email": "ok@example.com", "status": "won"}
    ]  # legacy "win" read as won
    reasons = {
        line["row"]: line["error"]["message"] for line in report_lines(report) if line["outcome"] == "invalid"
    }
    assert reasons == {
        1: "names no lead: give id, email or phone",
        2: "Unknown lead status 'closed': use one of qualified, won, lost.",
        3: "loss_reason is only kept when status='lost'; pass both together.",
        4: "value must be a number, got 'a lot'.",
        5: "unknown column(s) 'Status': a row takes id, email, phone, status, value, note, lossReason, "
        "spelled as the API spells them",
        6: "update_lead() has nothing to change: pass status, value, note or loss_reason.",
    }


def test_a_databases_exact_decimal_value_is_read_as_a_number() -> None:
    from decimal import Decimal

    lead, arguments = parse_row({"email": "ada@example.com", "status": "won", "value": Decimal("12.50")})

    assert lead == {"email": "ada@example.com"}
    assert arguments == {"email": "ada@example.com", "status": "won", "value": "12.50"}


@pytest.mark.parametrize(
    ("row", "lead", "arguments"),
    [
        (
            {"id": "lead_1", "email": "a@x.com", "status": "won"},
            {"id": "lead_1"},
            {"lead_id": "lead_1", "status": "won"},
        ),
        (
            {"email": "a@x.com", "phone": "+31600", "value": 5},
            {"email": "a@x.com"},
            {"email": "a@x.com", "value": 5},
        ),
        (
            {"id": "", "phone": "+31600", "note": "Called"},
            {"phone": "+31600"},
            {"phone": "+31600", "note": "Called"},
        ),
        (
            {"email": "a@x.com", "status": "lost", "lossReason": "Price", "value": None},
            {"email": "a@x.com"},
            {"email": "a@x.com", "status": "lost", "loss_reason": "Price"},
        ),
    ],
    ids=["id first, only it sent", "email before phone", "empty cells not given", "NULL not given"],
)
def test_a_valid_row_becomes_its_lead_and_update_lead_arguments(
    row: dict[str, Any], lead: dict[str, Any], arguments: dict[str, Any]
) -> None:
    assert parse_row(row) == (lead, arguments)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"status": "won"}, "names no lead: give id, email or phone"),
        ({"email": "a@x.com", "Status": "won"}, "unknown column(s) 'Status': a row takes id, email, phone"),
        ({"email": "a@x.com"}, "update_lead() has nothing to change"),
        ({"email": "a@x.com", "status": "won", "lossReason": "Price"}, "loss_reason is only kept when"),
    ],
    ids=["no lead", "unknown column", "no change", "loss reason without lost"],
)
def test_an_invalid_row_says_why(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRowError) as raised:
        parse_row(row)

    assert str(raised.value).startswith(reason)
