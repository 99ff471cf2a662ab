"""Reading a write-back's rows back: CSV, JSON Lines (gzipped or not) and Parquet, each row as a dict."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

from .conftest import (
    SUM,
    SUMMARY_ZERO,
    from_csv,
    needs_pyarrow,
    patches,
    report_lines,
    run,
    write_csv,
    write_jsonl,
)

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer


# -- the inputs ---------------------------------------------------------------------------------


def test_csv_rows_mark_leads_won_with_their_value_and_note(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    ada = octanist_server.add_lead(email="ada@example.com")
    bob = octanist_server.add_lead(phone="+3161234")
    path = write_csv(
        tmp_path / "deals.csv",
        ["email", "phone", "status", "value", "note"],
        [["ada@example.com", "", "won", "1200.50", "Signed"], ["", "+3161234", "lost", "", ""]],
    )

    summary = run(from_csv(path))

    assert summary == {
        **SUMMARY_ZERO,
        "rows": 2,
        "updated": 2,
        "leads_updated": 2,
        "reconciliation": f"{SUM}: 2 + 0 = 2 + 0 + 0 + 0 + 0 + 0 (adds up)",
    }
    assert octanist_server.lead(ada["id"])["status"] == "won"
    assert octanist_server.lead(ada["id"])["value"] == 1200.5
    assert octanist_server.lead(ada["id"])["note"] == "Signed"
    assert octanist_server.lead(bob["id"])["status"] == "lost"


def test_empty_csv_cells_are_not_given(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="ada@example.com")
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status", "value", "note", "lossReason"],
        [["ada@example.com", "won", "", "", ""]],
    )

    run(from_csv(path))

    assert patches(octanist_server) == [{"email": "ada@example.com", "status": "won"}]


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_json_lines_rows_are_read_plain_or_gzipped(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path, gzipped: bool
) -> None:
    lead = octanist_server.add_lead(email="ada@example.com")
    path = write_jsonl(
        tmp_path / "deals.jsonl", [{"id": lead["id"], "status": "qualified", "value": 30}], gzipped=gzipped
    )

    summary = run(ObjectStorageToOctanistLeadsOperator(task_id="write_back", path=path))

    assert summary["updated"] == 1
    assert patches(octanist_server) == [{"id": lead["id"], "status": "qualified", "value": 30}]


@needs_pyarrow
def test_parquet_rows_are_read_nulls_not_given(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ada = octanist_server.add_lead(email="ada@example.com")
    bob = octanist_server.add_lead(email="bob@example.com")
    table = pa.table(
        {
            "email": ["ada@example.com", "bob@example.com"],
            "status": ["won", "lost"],
            "value": [99.5, None],
            "lossReason": [None, "Too expensive"],
        }
    )
    pq.write_table(table, tmp_path / "deals.parquet")

    summary = run(
        ObjectStorageToOctanistLeadsOperator(
            task_id="write_back", path=(tmp_path / "deals.parquet").as_uri(), format="parquet"
        )
    )

    assert summary["updated"] == 2
    assert octanist_server.lead(ada["id"])["value"] == 99.5
    assert octanist_server.lead(bob["id"])["lossReason"] == "Too expensive"
    assert {"email": "bob@example.com", "status": "lost", "lossReason": "Too expensive"} in patches(
        octanist_server
    )


def test_a_line_that_is_not_a_json_object_is_an_invalid_row(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="ok@example.com")
    path = tmp_path / "rows.jsonl"
    path.write_text('{"email": "ok@example.com", "status": "won"}\n{"email": \n[1, 2]\n', encoding="utf-8")
    report = tmp_path / "report.jsonl"

    summary = run(
        ObjectStorageToOctanistLeadsOperator(
            task_id="write_back", path=path.as_uri(), report_path=report.as_uri(), max_failed_rows=2
        )
    )

    assert (summary["rows"], summary["updated"], summary["invalid"]) == (3, 1, 2)
    assert [line["error"]["message"] for line in report_lines(report)[1:]] == [
        "line 2 is not JSON (Expecting value)",
        "line 3 is a JSON list, not an object",
    ]
