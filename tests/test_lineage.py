"""How Octanist data and the other side of a transfer are named for OpenLineage and Airflow assets."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import typing
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_provider_octanist import lineage
from airflow_provider_octanist.types import Lead

if typing.TYPE_CHECKING:
    from pathlib import Path

needs_openlineage = pytest.mark.skipif(
    lineage._openlineage() is None, reason="the OpenLineage provider is not installed on this Airflow line"
)

OCTANIST = "https://octanist.com/api"


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


def test_an_octanist_asset_of_an_unknown_dataset_is_refused_naming_the_datasets() -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    message = r"Octanist datasets are 'leads' and 'ad-spend'; got 'stats'"
    # Airflow 2 only warns about a URI its scheme's handler refuses.
    refused = (
        pytest.raises(ValueError, match=message)
        if AIRFLOW_V_3_0_PLUS
        else pytest.warns(UserWarning, match=message)
    )
    with refused:
        asset("octanist://octanist.com/stats")


@needs_openlineage
def test_an_octanist_asset_reaches_openlineage_as_the_dataset_the_operators_report() -> None:
    from airflow.providers.openlineage.utils.utils import translate_airflow_asset

    converted = translate_airflow_asset(asset("octanist://octanist.com/leads"), None)
    reported = lineage.octanist_to_object_lineage(OCTANIST, "leads", "file:///x.jsonl").inputs[0]

    assert converted is not None
    assert (converted.namespace, converted.name) == (reported.namespace, reported.name)
    assert converted.facets == reported.facets


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
