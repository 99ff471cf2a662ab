"""The SQL write-back: a query's rows, read a batch at a time through the connection's DbApiHook."""

from __future__ import annotations

import json
import sqlite3
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

from .conftest import patches, run

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer


needs_sqlite_provider = pytest.mark.skipif(
    find_spec("airflow.providers.sqlite") is None,
    reason="apache-airflow-providers-sqlite is not installed (it is in the test dependency group)",
)


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
