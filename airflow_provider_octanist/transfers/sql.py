"""
Write lead outcomes from a SQL query into Octanist: any database with an Airflow provider, through
common.sql's ``DbApiHook``, the result read a batch at a time from the cursor.
"""

from __future__ import annotations

from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist.transfers._write_back import (
    _ToOctanistLeadsOperator,
    with_write_back_parameters,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context

__all__ = ["SqlToOctanistLeadsOperator"]

FETCH_ROWS = 1_000
"""Rows taken from the cursor at a time (``fetchmany``)."""


@with_write_back_parameters
class SqlToOctanistLeadsOperator(_ToOctanistLeadsOperator):
    """
    Update one Octanist lead per row of a SQL query's result; return a summary of every row's outcome.

    The query's columns are named as the API names them: ``id``, ``email`` or ``phone`` name the
    lead (the first that is not NULL), and any of ``status`` (``qualified``, ``won``, ``lost``),
    ``value``, ``note`` and ``lossReason`` carry the change; NULL is not given, and any other
    column makes the row invalid (alias your columns: ``SELECT customer_email AS email, ...``).
    The rows are validated, sent and accounted for as by ``ObjectStorageToOctanistLeadsOperator``.

    The database is reached through the ``DbApiHook`` of connection ``conn_id`` (Postgres,
    MySQL, Snowflake, BigQuery, sqlite...: whichever provider is installed), and the result is read
    from the cursor ``FETCH_ROWS`` rows at a time, never fetched whole.

    For example:

        SqlToOctanistLeadsOperator(
            task_id="mark_closed_deals_won",
            conn_id="warehouse",
            sql="SELECT email, 'won' AS status, amount AS value FROM deals WHERE closed_on = %(day)s",
            parameters={"day": "{{ ds }}"},
        )

    :param conn_id: the Airflow connection of the database (templated).
    :param sql: one query returning the rows (templated; a ``.sql`` file name is read as a template).
    :param parameters: the query's parameters, in the database driver's style (templated).
    :param hook_params: extra arguments for the database's hook, as common.sql's operators take them.
    :param kwargs: what every write-back takes, described after this list (``octanist_conn_id``,
        ``storage_conn_id``, ``max_concurrency``, ``max_failed_rows``, ``max_failed_ratio``,
        ``report_path``, ``state_path``, ``carry_over_for``, ``resolve_unknown``, ``dry_run``),
        and what any operator takes.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "sql",
        "parameters",
        "report_path",
        "state_path",
        "octanist_conn_id",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers: ClassVar[dict[str, str]] = {"sql": "sql", "parameters": "json"}

    def __init__(
        self,
        *,
        conn_id: str,
        sql: str,
        parameters: Mapping[str, Any] | Sequence[Any] | None = None,
        hook_params: Mapping[str, Any] | None = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        if not isinstance(conn_id, str) or not conn_id.strip():
            raise ValueError(f"conn_id must be the id of the database's Airflow connection, got {conn_id!r}.")
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError(f"sql must be one query (or the name of a .sql file), got {sql!r}.")
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.hook_params = dict(hook_params or {})

    def get_db_hook(self) -> Any:
        """The ``DbApiHook`` of ``conn_id``; ``ValueError`` when its hook is not one."""
        try:
            from airflow.providers.common.sql.hooks.sql import DbApiHook
        except ImportError as exc:  # shipped with Airflow, but it can be uninstalled
            raise RuntimeError(
                "SqlToOctanistLeadsOperator needs apache-airflow-providers-common-sql: "
                "pip install apache-airflow-providers-common-sql"
            ) from exc
        from airflow.providers.common.compat.sdk import BaseHook

        connection = BaseHook.get_connection(self.conn_id)
        hook = connection.get_hook(hook_params=self.hook_params)
        if not isinstance(hook, DbApiHook):
            raise ValueError(
                f"Connection {self.conn_id!r} (type {connection.conn_type!r}) gives a "
                f"{type(hook).__name__}, not a SQL hook (common.sql's DbApiHook): conn_id must name a "
                "database connection whose provider is installed."
            )
        return hook

    def _rows(self) -> Iterator[dict[str, Any]]:
        db_hook = self.get_db_hook()
        with closing(db_hook.get_conn()) as connection, closing(connection.cursor()) as cursor:
            if self.parameters:
                cursor.execute(self.sql, self.parameters)
            else:
                cursor.execute(self.sql)
            if cursor.description is None:
                raise ValueError(
                    f"The sql of task {self.task_id!r} returned no result set to read rows from: it "
                    "must be one query that selects the rows (email, status, value... from a table)."
                )
            names = [column[0] for column in cursor.description]
            while batch := cursor.fetchmany(FETCH_ROWS):
                for values in batch:
                    yield dict(zip(names, values, strict=True))

    def execute(self, context: Context) -> dict[str, Any]:
        return self._write_back(self._rows(), f"the query on connection {self.conn_id!r}")

    def _lineage(self, updated: int | None) -> Any:
        from airflow_provider_octanist.lineage import sql_to_octanist_lineage

        return sql_to_octanist_lineage(
            self.get_db_hook(),
            self.sql,
            self.conn_id,
            self.hook.settings.base_url,
            rows=updated,
            dry_run=self.dry_run,
        )
