"""The write-back operators: rows of an object or a SQL query update leads, every row accounted for."""

from __future__ import annotations

import csv
import gzip
import json
import sqlite3
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octanist.transfers._outcomes import Outcome
from airflow_provider_octanist.transfers._report import Progress, Tally
from airflow_provider_octanist.transfers._rows import parse_row
from airflow_provider_octanist.transfers._sender import Sender
from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator
from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

from .helpers import needs_pyarrow, run

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer

needs_sqlite_provider = pytest.mark.skipif(
    find_spec("airflow.providers.sqlite") is None,
    reason="apache-airflow-providers-sqlite is not installed (it is in the test dependency group)",
)


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path.as_uri()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]], *, gzipped: bool = False) -> str:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(data) if gzipped else data)
    return path.as_uri()


def from_csv(path: str, **kwargs: Any) -> ObjectStorageToOctanistLeadsOperator:
    return ObjectStorageToOctanistLeadsOperator(task_id="write_back", path=path, format="csv", **kwargs)


def patches(server: FakeOctanistServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.method == "PATCH"]


def report_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted(lines, key=lambda line: line["row"])


def use_connection(monkeypatch: pytest.MonkeyPatch, server: FakeOctanistServer, **extra: Any) -> None:
    """Point ``octanist_default`` at ``server`` with fast retries and these extras."""
    conn = {
        "conn_type": "octanist",
        "host": server.url,
        "password": server.api_key,
        "extra": {"retry_backoff": 0.01, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_OCTANIST_DEFAULT", json.dumps(conn))


SUMMARY_ZERO = {
    "rows": 0,
    "carried_over": 0,
    "updated": 0,
    "unchanged": 0,
    "not_found": 0,
    "ambiguous": 0,
    "invalid": 0,
    "failed": 0,
    "unknown": 0,
    "given_up": 0,
    "valid": 0,
    "not_sent": 0,
    "stopped_by": None,
    "leads_updated": 0,
    "rate_limited": 0,
    "dry_run": False,
    "report_path": None,
    "state_path": None,
}
SUM = "rows + carried_over = updated + unchanged + not_found + invalid + failed + unknown"


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


def test_a_missing_object_is_named_in_the_error(octanist_conn: str, tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.csv").as_uri()

    with pytest.raises(FileNotFoundError, match=f"There is no object at {missing} to read the rows from"):
        run(from_csv(missing))


# -- SQL ----------------------------------------------------------------------------------------


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sqlite3.Connection:
    """A sqlite warehouse behind connection ``warehouse`` (the sqlite provider's hook)."""
    db_path = tmp_path / "warehouse.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(db_path)}))
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE deals (customer_email TEXT, amount NUMERIC, closed_on TEXT, note TEXT)")
    return db


@needs_sqlite_provider
def test_sql_rows_update_leads_through_the_connections_db_api_hook(
    octanist_server: FakeOctanistServer, octanist_conn: str, warehouse: sqlite3.Connection
) -> None:
    ada = octanist_server.add_lead(email="ada@example.com")
    bob = octanist_server.add_lead(email="bob@example.com")
    warehouse.executemany(
        "INSERT INTO deals VALUES (?, ?, ?, ?)",
        [
            ("ada@example.com", 1200, "2026-03-10", None),
            ("bob@example.com", 80.5, "2026-03-10", "Renewal"),
            ("eve@example.com", 5, "2026-03-09", None),
        ],
    )
    warehouse.commit()

    summary = run(
        SqlToOctanistLeadsOperator(
            task_id="write_back",
            conn_id="warehouse",
            sql="SELECT customer_email AS email, 'won' AS status, amount AS value, note "
            "FROM deals WHERE closed_on = :day ORDER BY customer_email",
            parameters={"day": "{{ ds }}"},
        ),
        {"ds": "2026-03-10"},
    )

    assert summary["rows"] == 2
    assert summary["updated"] == 2
    assert octanist_server.lead(ada["id"])["value"] == 1200
    assert octanist_server.lead(bob["id"])["note"] == "Renewal"
    # NULL is not given: ada's update carries no note.
    assert {"email": "ada@example.com", "status": "won", "value": 1200} in patches(octanist_server)


@needs_sqlite_provider
def test_the_sql_result_is_read_a_batch_at_a_time_never_whole(
    octanist_server: FakeOctanistServer,
    octanist_conn: str,
    warehouse: sqlite3.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    from airflow_provider_octanist.transfers import sql as sql_module

    warehouse.executemany(
        "INSERT INTO deals VALUES (?, 1, '2026-03-10', NULL)", [(f"n{i}@x.com",) for i in range(7)]
    )
    warehouse.commit()
    fetched: list[str] = []

    class Cursor:
        """The driver's cursor, recording how rows are taken from it."""

        def __init__(self, cursor: sqlite3.Cursor) -> None:
            self._cursor = cursor
            self.description = None

        def execute(self, *args: Any) -> None:
            self._cursor.execute(*args)
            self.description = self._cursor.description

        def fetchmany(self, size: int) -> list[Any]:
            fetched.append(f"fetchmany({size})")
            return self._cursor.fetchmany(size)

        def fetchall(self) -> list[Any]:
            raise AssertionError("the whole result was fetched")

        def close(self) -> None:
            self._cursor.close()

    real_get_conn = SqliteHook.get_conn

    class Connection:
        def __init__(self, hook: SqliteHook) -> None:
            self._db = real_get_conn(hook)

        def cursor(self) -> Cursor:
            return Cursor(self._db.cursor())

        def close(self) -> None:
            self._db.close()

    def recording_get_conn(hook: SqliteHook) -> Connection:
        return Connection(hook)

    monkeypatch.setattr(SqliteHook, "get_conn", recording_get_conn)
    monkeypatch.setattr(sql_module, "FETCH_ROWS", 3)

    summary = run(
        SqlToOctanistLeadsOperator(
            task_id="write_back",
            conn_id="warehouse",
            sql="SELECT customer_email AS email, 'won' AS status FROM deals",
            dry_run=True,
        )
    )

    assert summary["rows"] == 7
    assert fetched == ["fetchmany(3)"] * 4  # 3 + 3 + 1, then an empty batch ends it


def test_a_connection_that_is_not_a_database_is_refused(octanist_conn: str) -> None:
    operator = SqlToOctanistLeadsOperator(task_id="write_back", conn_id=octanist_conn, sql="SELECT 1")

    with pytest.raises(ValueError, match=r"gives a OctanistHook, not a SQL hook \(common.sql's DbApiHook\)"):
        run(operator)


@needs_sqlite_provider
def test_sql_that_returns_no_result_set_is_refused(octanist_conn: str, warehouse: sqlite3.Connection) -> None:
    operator = SqlToOctanistLeadsOperator(task_id="write_back", conn_id="warehouse", sql="DELETE FROM deals")

    with pytest.raises(ValueError, match="returned no result set to read rows from"):
        run(operator)


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


# -- what Octanist answers ----------------------------------------------------------------------


def test_an_email_shared_by_two_leads_is_ambiguous_and_fails_the_task_naming_it(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="shared@example.com")
    octanist_server.add_lead(email="shared@example.com")
    octanist_server.add_lead(email="ada@example.com")
    path = write_csv(
        tmp_path / "d.csv", ["email", "status"], [["ada@example.com", "won"], ["shared@example.com", "won"]]
    )
    report = tmp_path / "report.jsonl"
    operator = from_csv(path, report_path=report.as_uri())

    with pytest.raises(AirflowFailException) as caught:
        run(operator)

    message = str(caught.value)
    assert "1 of 2 row(s) from" in message
    assert "more than max_failed_rows=0" in message
    assert (
        "row 2 (email shared@example.com): ambiguous: Octanist reported a conflict for PATCH /leads"
        in message
    )
    assert f"Every row's outcome is in the report at {report.as_uri()}" in message
    assert operator.summary is not None
    assert operator.summary["ambiguous"] == 1
    assert operator.summary["updated"] == 1
    ambiguous = report_lines(report)[1]
    assert ambiguous["outcome"] == "ambiguous"
    assert ambiguous["error"]["status"] == 409
    assert ambiguous["error"]["code"] == "CONFLICT"


def test_a_lead_that_does_not_exist_is_not_found(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [["lead_gone", "won"]])

    summary = run(from_csv(path, max_failed_rows=1))

    assert (summary["not_found"], summary["updated"]) == (1, 0)


def test_a_note_under_a_read_timeout_is_sent_once_and_its_row_failed(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server, timeout=0.2)
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=3, method="PATCH")
    path = write_csv(tmp_path / "d.csv", ["id", "status", "note"], [[lead["id"], "won", "Signed"]])
    report = tmp_path / "report.jsonl"

    summary = run(from_csv(path, max_failed_rows=1, report_path=report.as_uri()))

    assert (summary["failed"], summary["updated"]) == (1, 0)
    assert octanist_server.request_count("PATCH") == 1
    [line] = report_lines(report)
    assert line["outcome"] == "failed"
    assert "No answer from Octanist for PATCH /leads after 1 attempt(s)" in line["error"]["message"]
    assert "its outcome is unknown" in line["error"]["message"]


def test_an_update_without_a_note_under_a_read_timeout_is_retried_and_goes_through(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server, timeout=1.0)
    lead = octanist_server.add_lead()
    octanist_server.inject("delay", seconds=3, method="PATCH")
    path = write_csv(tmp_path / "d.csv", ["id", "status", "value"], [[lead["id"], "won", "10"]])

    summary = run(from_csv(path))

    assert summary["updated"] == 1
    assert octanist_server.request_count("PATCH") == 2


def test_max_failed_rows_is_the_most_rows_that_may_go_wrong(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(email="ok@example.com")
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status"],
        [["ok@example.com", "won"], ["gone@example.com", "won"], ["", "won"]],
    )

    assert run(from_csv(path, max_failed_rows=2))["updated"] == 1
    with pytest.raises(AirflowFailException, match=r"2 of 3 row\(s\) .* more than max_failed_rows=1"):
        run(from_csv(path, max_failed_rows=1))


def test_the_failure_names_the_first_five_problems_and_counts_the_rest(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv", ["email", "status"], [[f"n{i}@example.com", "closed"] for i in range(8)]
    )

    with pytest.raises(AirflowFailException) as caught:
        run(from_csv(path))

    message = str(caught.value)
    assert [f"row {i} (email n{i - 1}@example.com): invalid" in message for i in range(1, 9)] == [
        True
    ] * 5 + [False] * 3
    assert "; and 3 more." in message
    assert octanist_server.request_count() == 0


# -- the report and the summary -----------------------------------------------------------------


def test_the_report_has_one_line_per_row_and_never_the_api_key(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    ada = octanist_server.add_lead(email="ada@example.com")
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status", "value"],
        [["ada@example.com", "won", "10"], ["nobody@example.com", "won", "1"], ["x@example.com", "open", ""]],
    )
    report = tmp_path / "reports" / "day.jsonl"

    summary = run(
        from_csv(path, report_path=str(tmp_path.as_uri()) + "/reports/{{ ds }}.jsonl", max_failed_rows=2),
        {"ds": "day"},
    )

    assert summary["report_path"] == report.as_uri()
    lines = report_lines(report)
    assert lines[0] == {
        "row": 1,
        "outcome": "updated",
        "lead": {"email": "ada@example.com"},
        "lead_id": ada["id"],
        "leads_updated": 1,
    }
    assert lines[1]["row"] == 2
    assert lines[1]["outcome"] == "not_found"
    assert lines[1]["lead"] == {"email": "nobody@example.com"}
    assert lines[1]["error"]["status"] == 404
    assert lines[1]["error"]["code"] == "NOT_FOUND"
    assert lines[1]["error"]["request_id"].startswith("req_")
    assert lines[2] == {
        "row": 3,
        "outcome": "invalid",
        "lead": {"email": "x@example.com"},
        "error": {"message": "Unknown lead status 'open': use one of qualified, won, lost."},
    }
    assert octanist_server.api_key not in report.read_text(encoding="utf-8")
    assert [p.name for p in report.parent.iterdir()] == ["day.jsonl"]  # no temporary object left


def test_a_task_stopped_by_a_rejected_key_leaves_no_report(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow_provider_octanist.exceptions import OctanistAuthError

    monkeypatch.setenv(
        "AIRFLOW_CONN_OCTANIST_DEFAULT",
        json.dumps({"conn_type": "octanist", "host": octanist_server.url, "password": "wrong-key"}),
    )
    path = write_csv(
        tmp_path / "d.csv", ["email", "status"], [[f"n{i}@example.com", "won"] for i in range(50)]
    )
    reports = tmp_path / "reports"

    with pytest.raises(OctanistAuthError):
        run(from_csv(path, report_path=(reports / "r.jsonl").as_uri()))

    assert list(reports.iterdir()) == []
    assert octanist_server.request_count("PATCH") <= 8  # the rows in flight, then it stopped reading


def test_dry_run_checks_every_row_and_sends_nothing(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        ["email", "status"],
        [["a@example.com", "won"], ["b@example.com", "won"], ["", "won"]],
    )
    report = tmp_path / "report.jsonl"

    summary = run(from_csv(path, dry_run=True, max_failed_rows=1, report_path=report.as_uri()))

    assert summary == {
        **SUMMARY_ZERO,
        "rows": 3,
        "valid": 2,
        "invalid": 1,
        "dry_run": True,
        "report_path": report.as_uri(),
        "reconciliation": f"{SUM} + valid: 3 + 0 = 0 + 0 + 0 + 1 + 0 + 0 + 2 (adds up)",
    }
    assert octanist_server.requests == []
    assert [line["outcome"] for line in report_lines(report)] == ["valid", "valid", "invalid"]


def test_the_summary_and_source_stay_on_the_operator_after_execute(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "d.csv", ["email", "status"], [["a@example.com", "won"]])
    operator = from_csv(path, dry_run=True)

    summary = run(operator)

    assert operator.summary == summary
    assert operator.source == path


# -- sending ------------------------------------------------------------------------------------


def test_updates_share_a_pool_of_at_most_max_concurrency_connections(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = octanist_server.add_leads(120)
    octanist_server.latency = 0.01  # the updates overlap
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [[lead["id"], "won"] for lead in leads])

    summary = run(from_csv(path, max_concurrency=12))

    assert summary["updated"] == 120
    assert all(octanist_server.lead(lead["id"])["status"] == "won" for lead in leads)
    assert 1 < octanist_server.connections_opened <= 12


def test_the_connection_is_read_once_in_the_tasks_own_thread_before_the_updates_go_out(
    octanist_server: FakeOctanistServer, octanist_conn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Airflow 3.0's task runner answers one connection request at a time: sending threads that each
    # looked the connection up at once broke `airflow dags test` (and could mix answers in a worker).
    import threading

    from airflow_provider_octanist.hooks.octanist import OctanistHook

    lookups: list[str] = []
    sessions: list[Any] = []
    real_lookup, real_session = OctanistHook.get_connection, OctanistHook.get_conn

    def spy_lookup(cls: Any, conn_id: str) -> Any:
        lookups.append(threading.current_thread().name)
        return real_lookup(conn_id)

    def spy_session(self: OctanistHook) -> Any:
        session = real_session(self)
        if all(session is not seen for seen in sessions):
            sessions.append(session)
        return session

    monkeypatch.setattr(OctanistHook, "get_connection", classmethod(spy_lookup))
    monkeypatch.setattr(OctanistHook, "get_conn", spy_session)
    leads = octanist_server.add_leads(40)
    octanist_server.latency = 0.01
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [[lead["id"], "won"] for lead in leads])

    summary = run(from_csv(path, max_concurrency=8))

    assert summary["updated"] == 40
    assert lookups == [threading.current_thread().name]
    assert len(sessions) == 1


def test_a_burst_of_429s_narrows_the_window_then_it_recovers(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    use_connection(monkeypatch, octanist_server, retry_backoff=0.001, max_retries=10)
    leads = octanist_server.add_leads(100)
    octanist_server.inject("status", status=429, retry_after=0, count=12, method="PATCH")
    outcomes: list[Any] = []
    items = [
        (n, {"id": lead["id"]}, {"lead_id": lead["id"], "status": "won"}) for n, lead in enumerate(leads, 1)
    ]

    with OctanistHook(pool_size=8) as hook:
        sender = Sender(hook, 8)
        sender.run(items, outcomes.append)

    assert [outcome.outcome for outcome in outcomes] == ["updated"] * 100
    assert sender.rate_limited == 12
    assert sender.narrowest <= 4
    assert sender.window == 8.0
    assert octanist_server.request_count("PATCH") == 112


def test_the_operator_counts_the_429s_it_met(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("status", status=429, retry_after=0, count=2, method="PATCH")
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [[lead["id"], "won"]])

    summary = run(from_csv(path))

    assert (summary["updated"], summary["rate_limited"]) == (1, 2)


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


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_concurrency": 0}, "max_concurrency must be between 1 and 64, got 0"),
        ({"max_concurrency": 65}, "max_concurrency must be between 1 and 64, got 65"),
        ({"max_failed_rows": -1}, "max_failed_rows must be at least 0, got -1"),
        ({"dry_run": "yes"}, "dry_run must be True or False, got 'yes'"),
        ({"format": "xml"}, "format must be 'jsonl', 'csv' or 'parquet', got 'xml'"),
        ({"path": ""}, r"path must be a URL such as 's3://bucket/"),
        ({"report_path": " "}, r"path must be a URL such as 's3://bucket/"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "write_back", "path": "file:///tmp/rows.csv", **kwargs}
    with pytest.raises(ValueError, match=message):
        ObjectStorageToOctanistLeadsOperator(**arguments)


def test_templated_fields_are_those_an_airflow_user_expects() -> None:
    assert set(ObjectStorageToOctanistLeadsOperator.template_fields) == {
        "path",
        "report_path",
        "state_path",
        "octanist_conn_id",
    }
    assert set(SqlToOctanistLeadsOperator.template_fields) == {
        "conn_id",
        "sql",
        "parameters",
        "report_path",
        "state_path",
        "octanist_conn_id",
    }
    assert SqlToOctanistLeadsOperator.template_ext == (".sql",)


def test_provider_info_registers_both_write_back_modules() -> None:
    import importlib

    from airflow_provider_octanist import get_provider_info

    into_octanist = {
        entry["source-integration-name"]: importlib.import_module(entry["python-module"])
        for entry in get_provider_info()["transfers"]
        if entry["target-integration-name"] == "Octanist"
    }
    assert (
        into_octanist["Common IO"].ObjectStorageToOctanistLeadsOperator
        is ObjectStorageToOctanistLeadsOperator
    )
    assert into_octanist["Common SQL"].SqlToOctanistLeadsOperator is SqlToOctanistLeadsOperator
