"""A write-back that meets bad input or loses its key midway: every row accounted for, no blind retry."""

from __future__ import annotations

import csv
import gzip
import json
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octanist.exceptions import OctanistAuthError
from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

from .conftest import run

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer


def lead_rows(server: FakeOctanistServer, n: int) -> list[dict[str, Any]]:
    return [
        {"id": server.add_lead(email=f"n{i}@example.com")["id"], "status": "won", "note": f"deal {i}"}
        for i in range(n)
    ]


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    lines = ["id,status,note"] + [f"{row['id']},{row['status']},{row['note']}" for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_back(path: Path, report: Path, **kwargs: Any) -> ObjectStorageToOctanistLeadsOperator:
    return ObjectStorageToOctanistLeadsOperator(
        task_id="write_back", path=path.as_uri(), report_path=report.as_uri(), **kwargs
    )


def outcomes(report: Path) -> dict[int, str]:
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    return {line["row"]: line["outcome"] for line in lines}


def notes(server: FakeOctanistServer) -> int:
    return sum(1 for lead in server.leads if lead["note"])


def test_a_latin_1_line_is_an_invalid_row_and_every_other_row_is_applied(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    rows = lead_rows(octanist_server, 60)
    data = csv_bytes(rows).replace(f"{rows[34]['note']}".encode(), "café crème".encode("latin-1"))
    path, report = tmp_path / "deals.csv", tmp_path / "report.jsonl"
    path.write_bytes(data)

    with pytest.raises(AirflowFailException, match=r"1 of 60 row\(s\).*row 35.*not UTF-8"):
        run(write_back(path, report, format="csv"))

    assert outcomes(report) == {n: "invalid" if n == 35 else "updated" for n in range(1, 61)}
    assert notes(octanist_server) == 59


def test_a_cut_short_gzip_accounts_for_the_rows_read_and_fails_without_a_retry(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    rows = lead_rows(octanist_server, 2_000)
    whole = gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode(), mtime=0)
    path, report = tmp_path / "deals.jsonl.gz", tmp_path / "report.jsonl"
    path.write_bytes(whole[: len(whole) // 2])

    operator = write_back(path, report, max_failed_rows=10)

    with pytest.raises(AirflowFailException, match="gzip stream is cut short") as raised:
        run(operator)

    read = outcomes(report)
    assert operator.summary is not None
    assert operator.summary["rows"] == len(read)
    assert "gzip stream is cut short" in operator.summary["stopped_by"]
    applied = [n for n, outcome in read.items() if outcome == "updated"]
    assert 0 < len(read) < 2_000
    assert sorted(read) == list(range(1, len(read) + 1))
    assert set(read.values()) <= {"updated", "invalid"}  # a line cut in half is no JSON
    assert notes(octanist_server) == len(applied)
    assert "not retried" in str(raised.value)


def test_a_200000_character_note_cell_is_read_and_sent_whole(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    rows = lead_rows(octanist_server, 40)
    rows[30]["note"] = "x" * 200_000
    path, report = tmp_path / "deals.csv", tmp_path / "report.jsonl"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "status", "note"])
        writer.writeheader()
        writer.writerows(rows)
    limit = csv.field_size_limit()

    summary = run(write_back(path, report, format="csv"))

    assert summary["updated"] == summary["rows"] == 40
    assert octanist_server.lead(rows[30]["id"])["note"] == "x" * 200_000
    assert csv.field_size_limit() == limit  # set back for the rest of the process


def test_a_key_revoked_midway_accounts_for_every_row_and_fails_without_a_retry(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    rows = lead_rows(octanist_server, 200)
    path, report = tmp_path / "deals.csv", tmp_path / "report.jsonl"
    path.write_bytes(csv_bytes(rows))
    octanist_server.revoke_key(after=80)
    operator = write_back(path, report, format="csv")

    reached = r"80 row\(s\) had reached Octanist \(80 updated"
    with pytest.raises(AirflowFailException, match=reached) as raised:
        run(operator)

    assert isinstance(raised.value.__cause__, OctanistAuthError)
    assert "not retried" in str(raised.value)
    assert octanist_server.api_key not in str(raised.value)
    read = outcomes(report)
    assert sorted(read) == list(range(1, 201))
    assert list(read.values()).count("updated") == 80
    assert list(read.values()).count("not_sent") == 120
    assert notes(octanist_server) == 80
    summary = operator.summary
    assert summary is not None
    assert (summary["rows"], summary["updated"], summary["not_sent"]) == (200, 80, 120)
    assert "rejected the API key" in summary["stopped_by"]


def test_a_key_refused_before_any_update_stays_a_plain_retryable_error(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    rows = lead_rows(octanist_server, 30)
    path, report = tmp_path / "deals.csv", tmp_path / "report.jsonl"
    path.write_bytes(csv_bytes(rows))
    octanist_server.revoke_key(after=0)

    with pytest.raises(OctanistAuthError):
        run(write_back(path, report, format="csv"))

    assert not report.exists()  # the retry writes it
    assert notes(octanist_server) == 0
