"""How Octanist data and the other side of a transfer are named for OpenLineage and Airflow assets."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_octanist import lineage
from airflow_provider_octanist.types import Lead

if typing.TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer

needs_openlineage = pytest.mark.skipif(
    lineage._openlineage() is None, reason="the OpenLineage provider is not installed on this Airflow line"
)

OCTANIST = "https://octanist.com/api"
DAGS = Path(__file__).parent / "dags"


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://octanist.com/api", "octanist://octanist.com"),
        ("https://Octanist.COM:443/api/", "octanist://octanist.com"),
        ("https://eu.octanist.com:8443/api", "octanist://eu.octanist.com:8443"),
        ("http://127.0.0.1:8080/api", "octanist://127.0.0.1:8080"),
        ("http://[::1]:9000/api", "octanist://[::1]:9000"),
    ],
)
def test_the_namespace_is_the_host_of_the_base_url_with_a_port_only_when_not_the_default(
    base_url: str, expected: str
) -> None:
    assert lineage.namespace(base_url) == expected


def test_a_base_url_without_a_host_is_refused_saying_what_to_give() -> None:
    with pytest.raises(ValueError, match=r"needs a host, such as https://octanist.com/api"):
        lineage.namespace("octanist.com")


def test_the_asset_uri_of_a_dataset_is_its_namespace_and_name() -> None:
    assert lineage.asset_uri(OCTANIST, "leads") == "octanist://octanist.com/leads"
    assert lineage.asset_uri(OCTANIST, "ad-spend") == "octanist://octanist.com/ad-spend"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///data/octanist/leads.jsonl", ("file", "/data/octanist/leads.jsonl")),
        ("local:///data/leads.jsonl", ("file", "/data/leads.jsonl")),
        ("s3://lake/octanist/leads/2026-03-02.jsonl.gz", ("s3://lake", "octanist/leads/2026-03-02.jsonl.gz")),
        ("gs://lake/octanist/ad-spend.parquet", ("gs://lake", "octanist/ad-spend.parquet")),
        ("gcs://lake/x.jsonl", ("gs://lake", "x.jsonl")),
        ("abfs://container/x.jsonl", ("abfs://container", "x.jsonl")),
    ],
)
def test_storage_paths_are_named_as_the_openlineage_naming_spec_names_them(
    url: str, expected: tuple[str, str]
) -> None:
    assert lineage.storage_name(url) == expected


def test_the_lead_schema_is_every_field_of_a_lead_but_the_triggers_own() -> None:
    schema = dict(lineage.lead_schema())

    assert set(schema) == set(typing.get_type_hints(Lead)) - {"previousStatus"}
    assert lineage.lead_schema()[0] == ("id", "string")
    assert (schema["value"], schema["ad_storage"], schema["status"]) == ("float", "boolean", "string")


def test_the_module_airflow_imports_for_the_asset_scheme_imports_no_openlineage() -> None:
    # Airflow imports the normalizer and the converter while it discovers providers.
    code = (
        "import sys; before = set(sys.modules); import airflow_provider_octanist.lineage; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    added = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()

    assert [name for name in added if "openlineage" in name or name.split(".")[0] == "airflow"] == []


# -- the octanist:// asset scheme ---------------------------------------------------------------


def asset(uri: str) -> Any:
    from airflow.providers.common.compat.sdk import Asset

    return Asset(uri)


def test_an_octanist_asset_uri_is_canonical() -> None:
    assert asset("octanist://OCTANIST.com/leads/").uri == "octanist://octanist.com/leads"
    assert asset("octanist://octanist.com/ad-spend?x=1#top").uri == "octanist://octanist.com/ad-spend"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("octanist://octanist.com/leads", "octanist://octanist.com/leads"),
        ("octanist://Octanist.COM:8443//leads//", "octanist://octanist.com:8443/leads"),
        ("octanist://octanist.com/ad-spend?since=2026-03-01", "octanist://octanist.com/ad-spend"),
        # Not lineage names: returned as given.
        ("octanist://leads/won", "octanist://leads/won"),
        ("octanist://Leads/Won?b=2&a=1", "octanist://Leads/Won?b=2&a=1"),
        ("octanist://anything", "octanist://anything"),
        ("octanist:///leads", "octanist:///leads"),
        ("octanist://octanist.com/stats", "octanist://octanist.com/stats"),
        ("octanist://octanist.com/leads/won", "octanist://octanist.com/leads/won"),
        ("octanist://octanist.com/LEADS", "octanist://octanist.com/LEADS"),
    ],
)
def test_the_normalizer_normalizes_the_lineage_names_and_returns_any_other_uri_as_given(
    given: str, expected: str
) -> None:
    assert lineage.sanitize_uri(urlsplit(given)) == urlsplit(expected)


@pytest.mark.parametrize(
    ("uri", "as_airflow_keeps_it"),
    [
        ("octanist://leads/won", "octanist://leads/won"),
        ("octanist://leads/lost/", "octanist://leads/lost"),
        ("octanist://anything", "octanist://anything/"),
        ("octanist:///leads", "octanist:/leads"),  # urlunsplit's spelling of an empty host
        ("octanist://octanist.com/stats", "octanist://octanist.com/stats"),
        ("octanist://Crm/Won?b=2&a=1#x", "octanist://Crm/Won?a=1&b=2"),
    ],
)
def test_an_octanist_asset_that_is_not_a_lineage_name_stays_as_airflow_alone_keeps_it(
    uri: str, as_airflow_keeps_it: str
) -> None:
    # Any octanist:// URI was a valid asset before the scheme was registered: no error, no warning,
    # and only Airflow's own normalization (sorted query, no fragment, no trailing slash).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert asset(uri).uri == as_airflow_keeps_it


@needs_openlineage
def test_an_octanist_asset_reaches_openlineage_as_the_dataset_the_operators_report() -> None:
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    converted = translate_airflow_asset(asset("octanist://octanist.com/leads"), None)
    reported = lineage.octanist_to_object_lineage(OCTANIST, "leads", "file:///x.jsonl").inputs[0]

    assert converted is not None
    assert (converted.namespace, converted.name) == (reported.namespace, reported.name)
    assert converted.facets == reported.facets


def test_a_dag_scheduled_on_an_octanist_asset_of_its_own_naming_parses() -> None:
    from airflow.models import DagBag
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    bag = DagBag(dag_folder=str(DAGS / "octanist_asset_uris.py"))

    assert bag.import_errors == {}
    timetable = bag.dags["octanist_asset_uris"].timetable
    if AIRFLOW_V_3_0_PLUS:
        watched = timetable.asset_condition
        assert [watcher.name for watcher in watched.watchers] == ["leads_won_watcher"]
    else:  # Airflow 2 calls an asset a dataset, and has no watchers
        watched = timetable.dataset_condition
    assert watched.uri == "octanist://leads/won"


def test_an_octanist_asset_that_is_not_a_lineage_name_converts_to_no_openlineage_dataset() -> None:
    assert lineage.convert_asset_to_openlineage(asset("octanist://leads/won"), None) is None
    assert lineage.convert_asset_to_openlineage(asset("octanist://octanist.com/stats"), None) is None


# -- the write-backs ----------------------------------------------------------------------------


@needs_openlineage
def test_a_write_back_from_an_object_reads_the_object_and_writes_the_leads() -> None:
    found = lineage.object_to_octanist_lineage("s3://crm/outcomes/2026-03-02.csv", OCTANIST, rows=12)

    [source], [target] = found.inputs, found.outputs
    assert (source.namespace, source.name) == ("s3://crm", "outcomes/2026-03-02.csv")
    assert (target.namespace, target.name) == ("octanist://octanist.com", "leads")
    assert target.outputFacets["outputStatistics"].rowCount == 12
    assert "schema" in target.facets


@needs_openlineage
def test_a_dry_run_write_back_reads_the_object_and_writes_nothing() -> None:
    found = lineage.object_to_octanist_lineage("s3://crm/outcomes.csv", OCTANIST, rows=0, dry_run=True)

    assert [(d.namespace, d.name) for d in found.inputs] == [("s3://crm", "outcomes.csv")]
    assert found.outputs == []


@needs_openlineage
def test_a_write_back_from_sql_reads_the_tables_of_the_query_and_writes_the_leads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("airflow.providers.sqlite", reason="the SQLite provider is not installed")
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    database = tmp_path / "crm.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE outcomes (lead_id TEXT, outcome TEXT, amount REAL)")
    monkeypatch.setenv("AIRFLOW_CONN_CRM", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    sql = "SELECT lead_id AS id, outcome AS status, amount AS value FROM outcomes WHERE outcome = 'won'"

    found = lineage.sql_to_octanist_lineage(SqliteHook(sqlite_conn_id="crm"), sql, "crm", OCTANIST, rows=3)

    assert [(d.namespace, d.name) for d in found.inputs] == [(f"sqlite://{database}", "main.outcomes")]
    assert [(d.namespace, d.name) for d in found.outputs] == [("octanist://octanist.com", "leads")]
    assert found.outputs[0].outputFacets["outputStatistics"].rowCount == 3
    assert found.job_facets["sql"].query.startswith("SELECT lead_id AS id")


def test_without_openlineage_the_lineage_functions_return_none(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def without_openlineage(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("airflow.providers.openlineage", "airflow.providers.common.compat.openlineage")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_openlineage)

    assert lineage.octanist_to_object_lineage(OCTANIST, "leads", "file:///x.jsonl", rows=1) is None
    assert lineage.object_to_octanist_lineage("file:///x.jsonl", OCTANIST) is None
    assert lineage.sql_to_octanist_lineage(object(), "SELECT 1", "crm", OCTANIST) is None
    assert urlsplit(lineage.asset_uri(OCTANIST, "leads")).scheme == "octanist"


# -- what the write-back operators report -------------------------------------------------------

TWINS = "twins@example.com"


WriteBack = Callable[..., tuple[Any, tuple[str, str]]]
"""Builds a write-back of the rows given: ``(operator, (namespace, name) of its source)``."""


@pytest.fixture(params=["object", "sql"])
def write_back(
    request: pytest.FixtureRequest, octanist_conn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> WriteBack:
    """A write-back from a JSON Lines file, then from a SQLite table, to the fake server."""
    from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator
    from airflow_provider_octanist.transfers.sql import SqlToOctanistLeadsOperator

    def from_a_file(rows: list[dict[str, Any]], **kwargs: Any) -> tuple[Any, tuple[str, str]]:
        path = tmp_path / "outcomes.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        operator = ObjectStorageToOctanistLeadsOperator(task_id="write_back", path=path.as_uri(), **kwargs)
        return operator, ("file", str(path))

    def from_sql(rows: list[dict[str, Any]], **kwargs: Any) -> tuple[Any, tuple[str, str]]:
        database = tmp_path / "crm.db"
        with sqlite3.connect(database) as db:
            db.execute("CREATE TABLE outcomes (id TEXT, email TEXT, status TEXT)")
            db.executemany(
                "INSERT INTO outcomes VALUES (:id, :email, :status)",
                [{"id": None, "email": None, **row} for row in rows],
            )
        monkeypatch.setenv("AIRFLOW_CONN_CRM", json.dumps({"conn_type": "sqlite", "host": str(database)}))
        operator = SqlToOctanistLeadsOperator(
            task_id="write_back", conn_id="crm", sql="SELECT id, email, status FROM outcomes", **kwargs
        )
        return operator, (f"sqlite://{database}", "main.outcomes")

    if request.param == "sql":
        pytest.importorskip("airflow.providers.sqlite", reason="the SQLite provider is not installed")
        return from_sql
    return from_a_file


@needs_openlineage
def test_a_write_back_counts_the_leads_it_updated_not_its_rows(
    write_back: WriteBack, octanist_server: FakeOctanistServer
) -> None:
    # Octanist updates every lead an email names when the organisation allows bulk updates.
    octanist_server.bulk_updates = True
    octanist_server.add_leads(3, email=TWINS)
    one = octanist_server.add_lead(id="lead_one")
    operator, _ = write_back(
        [{"email": TWINS, "status": "qualified"}, {"id": one["id"], "status": "qualified"}]
    )

    summary = operator.execute({})
    [target] = operator.get_openlineage_facets_on_complete(None).outputs

    assert (summary["rows"], summary["updated"], summary["leads_updated"]) == (2, 2, 4)
    assert (target.namespace, target.name) == (lineage.namespace(octanist_server.url), "leads")
    assert target.outputFacets["outputStatistics"].rowCount == 4


@needs_openlineage
def test_a_dry_run_reports_its_source_and_no_octanist_output(
    write_back: WriteBack, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead(id="lead_one")
    operator, source = write_back([{"id": lead["id"], "status": "won"}], dry_run=True)

    on_start = operator.get_openlineage_facets_on_start()
    summary = operator.execute({})
    on_complete = operator.get_openlineage_facets_on_complete(None)

    assert summary["valid"] == 1
    assert [request for request in octanist_server.requests if request.method == "PATCH"] == []
    for reported in (on_start, on_complete):
        assert [(d.namespace, d.name) for d in reported.inputs] == [source]
        assert reported.outputs == []
