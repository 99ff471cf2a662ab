"""The export operators, streaming from the fake Octanist server to ``file://`` and ``memory://`` paths."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.exceptions import OctanistServerError
from airflow_provider_octanist.transfers import _storage
from airflow_provider_octanist.transfers.object_storage import (
    OctanistAdSpendToObjectStorageOperator,
    OctanistLeadsToObjectStorageOperator,
)

from .conftest import from_csv, needs_pyarrow, run

if TYPE_CHECKING:
    from pathlib import Path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def memory_path() -> str:
    return f"memory://octanist-tests/{uuid.uuid4().hex}/leads.jsonl"


def memory_fs() -> Any:
    from fsspec.implementations.memory import MemoryFileSystem

    return MemoryFileSystem()


# -- content ------------------------------------------------------------------------------------


def test_every_lead_of_many_pages_is_written_once_in_order_as_the_api_returned_it(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    added = [
        octanist_server.add_lead(name=f"Lead {i}", createdAt=f"2026-03-01T00:00:{i:02d}.000Z")
        for i in range(23)
    ]
    target = tmp_path / "leads.jsonl"
    summary = run(
        OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=5)
    )
    assert lines(target) == added
    # Each page asks from the newest updatedAt of the one before, so it repeats that lead: 4 new a page.
    assert octanist_server.request_count("GET", "/api/leads") == 6
    assert summary == {
        "path": f"file://{target}",
        "format": "jsonl",
        "compression": None,
        "rows": 23,
        "bytes": target.stat().st_size,
        "by_status": {"open": 23},
    }


def test_lines_are_strict_compact_utf8_json(octanist_server: Any, octanist_conn: str, tmp_path: Path) -> None:
    octanist_server.add_lead(name="Zoë Ñúñez 李", custom={"company": "Acme", "size": 3})
    target = tmp_path / "leads.jsonl"
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}"))
    raw = target.read_bytes()
    assert raw.endswith(b"\n")
    assert raw.count(b"\n") == 1
    assert "Zoë Ñúñez 李".encode() in raw  # UTF-8, not \u escapes
    assert raw.startswith(b'{"id":"lead_')  # compact, in the API's key order
    assert json.loads(raw)["custom"] == octanist_server.leads[0]["custom"]


def test_no_matching_lead_writes_an_empty_file(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(status="open")
    target = tmp_path / "won.jsonl"
    summary = run(
        OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", status="won")
    )
    assert target.read_bytes() == b""
    assert (summary["rows"], summary["bytes"], summary["by_status"]) == (0, 0, {})


def test_summary_counts_leads_by_status(octanist_server: Any, octanist_conn: str, tmp_path: Path) -> None:
    octanist_server.add_leads(3, status="won")
    octanist_server.add_leads(2, status="lost")
    octanist_server.add_leads(1, status="qualified")
    summary = run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{tmp_path}/x.jsonl"))
    assert summary["by_status"] == {"lost": 2, "qualified": 1, "won": 3}


def test_a_local_directory_is_created_and_an_existing_file_replaced(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    target = tmp_path / "a" / "b" / "leads.jsonl"
    octanist_server.add_lead(id="lead_first")
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}"))
    octanist_server.add_lead(id="lead_second")
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}"))
    assert sorted(lead["id"] for lead in lines(target)) == ["lead_first", "lead_second"]
    assert [p.name for p in target.parent.iterdir()] == ["leads.jsonl"]


def test_gzip_writes_one_gzip_stream_of_the_same_lines(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    added = octanist_server.add_leads(12)
    plain, packed = tmp_path / "leads.jsonl", tmp_path / "leads.jsonl.gz"
    run(OctanistLeadsToObjectStorageOperator(task_id="plain", path=f"file://{plain}", page_size=5))
    summary = run(
        OctanistLeadsToObjectStorageOperator(
            task_id="gz", path=f"file://{packed}", page_size=5, compression="gzip"
        )
    )
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert {lead["id"] for lead in lines(plain)} == {lead["id"] for lead in added}
    assert summary["compression"] == "gzip"
    assert summary["bytes"] == packed.stat().st_size


def test_memory_paths_hold_the_export(octanist_server: Any, octanist_conn: str) -> None:
    added = octanist_server.add_leads(7)
    path = memory_path()
    summary = run(OctanistLeadsToObjectStorageOperator(task_id="export", path=path, page_size=3))
    content = memory_fs().cat(path.removeprefix("memory://"))
    assert [json.loads(line) for line in content.splitlines()] == added
    assert summary["path"] == path
    assert summary["bytes"] == len(content)
    assert memory_fs().ls(path.removeprefix("memory://").rsplit("/", 1)[0], detail=False) == [
        "/" + path.removeprefix("memory://")
    ]


def test_an_object_storage_path_is_taken_as_it_is(octanist_server: Any, octanist_conn: str) -> None:
    octanist_server.add_leads(2)
    url = memory_path()
    target = _storage.object_storage_path(url.replace("leads.jsonl", "again.jsonl"))
    summary = run(OctanistLeadsToObjectStorageOperator(task_id="export", path=target))
    assert summary["rows"] == 2
    assert len(target.read_bytes().splitlines()) == 2


# -- filters ------------------------------------------------------------------------------------


def test_every_filter_reaches_octanist(octanist_server: Any, octanist_conn: str, tmp_path: Path) -> None:
    octanist_server.add_lead(
        id="lead_match",
        name="Ada Lovelace",
        status="won",
        source="api",
        value=500,
        createdAt="2026-03-10T08:00:00.000Z",
        updatedAt="2026-03-10T09:00:00.000Z",
    )
    octanist_server.add_lead(
        id="lead_other", name="Ada Other", status="open", createdAt="2026-03-10T08:00:00.000Z"
    )
    op = OctanistLeadsToObjectStorageOperator(
        task_id="export",
        path=f"file://{tmp_path}/x.jsonl",
        status="won",
        updated_gte="2026-03-10T00:00:00Z",
        updated_lt="2026-03-11T00:00:00Z",
        created_gte="2026-03-10T00:00:00Z",
        created_lt="2026-03-11T00:00:00Z",
        search="ada",
        sort="updatedAt:desc",
        fields=["name", "status"],
        page_size=10,
        max_results=5,
        extra_filters={"source": "api", "value_gte": 100},
    )
    run(op)
    assert lines(tmp_path / "x.jsonl") == [{"id": "lead_match", "name": "Ada Lovelace", "status": "won"}]
    count, listing, recount = (request.query for request in octanist_server.requests)
    assert (
        count
        == recount
        == {  # another sort reads by page number, between two counts
            "limit": ["1"],
            "page": ["1"],
            "status": ["won"],
            "updatedAt[gte]": ["2026-03-10T00:00:00.000Z"],
            "updatedAt[lt]": ["2026-03-11T00:00:00.000Z"],
            "createdAt[gte]": ["2026-03-10T00:00:00.000Z"],
            "createdAt[lt]": ["2026-03-11T00:00:00.000Z"],
            "search": ["ada"],
            "fields": ["id"],
            "source": ["api"],
            "value[gte]": ["100"],
        }
    )
    assert listing == {
        "limit": ["10"],
        "page": ["1"],
        "status": ["won"],
        "updatedAt[gte]": ["2026-03-10T00:00:00.000Z"],
        "updatedAt[lt]": ["2026-03-11T00:00:00.000Z"],
        "createdAt[gte]": ["2026-03-10T00:00:00.000Z"],
        "createdAt[lt]": ["2026-03-11T00:00:00.000Z"],
        "search": ["ada"],
        "sort": ["updatedAt:desc"],
        "fields": ["id,name,status"],
        "source": ["api"],
        "value[gte]": ["100"],
    }


def test_leads_are_read_oldest_updated_first_unless_sort_says_otherwise(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(id="lead_new", createdAt="2026-03-01T00:00:00.000Z")
    octanist_server.add_lead(id="lead_old", createdAt="2026-03-02T00:00:00.000Z")
    octanist_server.update_lead("lead_new", at="2026-03-03T00:00:00.000Z", name="Edited")
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{tmp_path}/x.jsonl"))
    assert [lead["id"] for lead in lines(tmp_path / "x.jsonl")] == ["lead_old", "lead_new"]
    assert {request.query["sort"][0] for request in octanist_server.requests} == {"updatedAt:asc"}

    run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export", path=f"file://{tmp_path}/y.jsonl", sort="createdAt:asc"
        )
    )
    assert [lead["id"] for lead in lines(tmp_path / "y.jsonl")] == ["lead_new", "lead_old"]


def test_max_results_stops_the_export(octanist_server: Any, octanist_conn: str, tmp_path: Path) -> None:
    octanist_server.add_leads(9)
    summary = run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export", path=f"file://{tmp_path}/x.jsonl", page_size=4, max_results=6
        )
    )
    assert summary["rows"] == 6
    assert len(lines(tmp_path / "x.jsonl")) == 6


def test_path_and_filters_are_rendered_from_the_context(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead(id="lead_in", updatedAt="2026-03-10T12:00:00.000Z")
    octanist_server.add_lead(id="lead_out", updatedAt="2026-03-11T12:00:00.000Z")
    op = OctanistLeadsToObjectStorageOperator(
        task_id="export",
        path="file://{{ params.dir }}/leads-{{ ds }}.jsonl",
        updated_gte="{{ data_interval_start }}",
        updated_lt="{{ data_interval_end }}",
    )
    context = {
        "params": {"dir": str(tmp_path)},
        "ds": "2026-03-10",
        "data_interval_start": datetime(2026, 3, 10, tzinfo=timezone.utc),
        "data_interval_end": datetime(2026, 3, 11, tzinfo=timezone.utc),
    }
    summary = run(op, context)
    assert op.path == f"file://{tmp_path}/leads-2026-03-10.jsonl"
    assert summary["path"] == op.path
    assert [lead["id"] for lead in lines(tmp_path / "leads-2026-03-10.jsonl")] == ["lead_in"]


def test_user_facing_arguments_are_templated() -> None:
    assert set(OctanistLeadsToObjectStorageOperator.template_fields) == {
        "path", "status", "updated_gte", "updated_lt", "created_gte", "created_lt", "search", "sort",
        "fields", "extra_filters", "octanist_conn_id",
    }  # fmt: skip
    assert set(OctanistAdSpendToObjectStorageOperator.template_fields) == {
        "path",
        "start_day",
        "end_day",
        "platform",
        "group_by",
        "octanist_conn_id",
    }


# -- nothing half-written -----------------------------------------------------------------------


def fail_from_page(server: Any, page: int) -> None:
    """Answer pages before ``page`` normally, then 500 until the hook gives up (it retries 3 times)."""
    if page > 1:
        server.inject("delay", seconds=0, count=page - 1, method="GET", path="/api/leads")
    server.inject("status", status=500, count=4, method="GET", path="/api/leads")


def test_a_failure_mid_stream_leaves_nothing_at_a_local_path(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_leads(20)
    fail_from_page(octanist_server, 3)
    target = tmp_path / "out" / "leads.jsonl"
    with pytest.raises(OctanistServerError):
        run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=5))
    assert octanist_server.request_count("GET", "/api/leads") == 2 + 4
    assert list(target.parent.iterdir()) == []


def test_a_failure_mid_stream_keeps_the_previous_object_whole(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_leads(20)
    target = tmp_path / "leads.jsonl"
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=5))
    before = target.read_bytes()
    fail_from_page(octanist_server, 2)
    with pytest.raises(OctanistServerError):
        run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=5))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["leads.jsonl"]


def test_a_failure_mid_stream_leaves_nothing_at_a_memory_path(
    octanist_server: Any, octanist_conn: str
) -> None:
    octanist_server.add_leads(20)
    fail_from_page(octanist_server, 4)
    path = memory_path()
    with pytest.raises(OctanistServerError):
        run(
            OctanistLeadsToObjectStorageOperator(task_id="export", path=path, page_size=5, compression="gzip")
        )
    folder = path.removeprefix("memory://").rsplit("/", 1)[0]
    assert not memory_fs().exists(folder) or memory_fs().ls(folder) == []


@needs_pyarrow
def test_a_failed_parquet_export_leaves_nothing(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_leads(12)
    fail_from_page(octanist_server, 3)
    with pytest.raises(OctanistServerError):
        run(
            OctanistLeadsToObjectStorageOperator(
                task_id="export", path=f"file://{tmp_path}/x.parquet", page_size=5, format="parquet"
            )
        )
    assert list(tmp_path.iterdir()) == []


def test_a_retry_writes_the_whole_object_again(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    added = octanist_server.add_leads(12)
    fail_from_page(octanist_server, 2)
    target = tmp_path / "leads.jsonl"
    op = OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=5)
    with pytest.raises(OctanistServerError):
        run(op)
    summary = run(
        OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=5)
    )
    assert {lead["id"] for lead in lines(target)} == {lead["id"] for lead in added}
    assert summary["rows"] == len(lines(target)) == 12


def test_a_bad_filter_fails_before_anything_is_written(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    op = OctanistLeadsToObjectStorageOperator(
        task_id="export", path=f"file://{tmp_path}/x.jsonl", updated_gte="{{ params.since }}"
    )
    with pytest.raises(ValueError, match="updated_gte"):
        run(op, {"params": {"since": "yesterday"}})
    assert list(tmp_path.iterdir()) == []
    assert octanist_server.request_count() == 0


# -- the API key --------------------------------------------------------------------------------


def test_the_api_key_reaches_neither_the_file_nor_the_summary_nor_the_logs(
    octanist_server: Any,
    octanist_conn: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    octanist_server.add_leads(3, note="hello")
    target = tmp_path / "leads.jsonl"
    with caplog.at_level(logging.DEBUG):
        summary = run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}"))
    key = octanist_server.api_key
    assert key not in target.read_text()
    assert key not in json.dumps(summary)
    # Task logs go through the standard library (Airflow 2) or structlog to stdout (Airflow 3).
    logged = caplog.text + "".join(capsys.readouterr())
    assert "Exported 3 row(s)" in logged
    assert key not in logged


# -- parquet ------------------------------------------------------------------------------------


@needs_pyarrow
def test_parquet_has_the_fixed_lead_schema_and_every_lead(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from airflow_provider_octanist.transfers import _formats

    octanist_server.add_lead(
        id="lead_a", status="won", value=1200, ad_storage=True, createdAt="2026-03-01T10:00:00.000Z"
    )
    octanist_server.add_leads(9, createdAt="2026-03-02T10:00:00.000Z")
    target = tmp_path / "leads.parquet"
    summary = run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export", path=f"file://{target}", page_size=4, format="parquet"
        )
    )
    table = pq.read_table(target)
    assert table.num_rows == 10 == summary["rows"]
    assert table.column_names == [name for name, _ in _formats.LEAD_COLUMNS] + ["extra_fields"]
    first = table.slice(0, 1).to_pylist()[0]
    assert first["id"] == "lead_a"
    assert first["value"] == 1200.0
    assert first["ad_storage"] is True
    assert first["createdAt"] == datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    assert first["extra_fields"] is None
    assert str(table.schema.field("createdAt").type) == "timestamp[us, tz=UTC]"
    assert summary["format"] == "parquet"
    assert summary["bytes"] == target.stat().st_size


@needs_pyarrow
def test_parquet_schema_is_the_same_when_pages_differ(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from airflow_provider_octanist.transfers import _formats

    octanist_server.add_lead(id="lead_sparse", createdAt="2026-03-01T00:00:00.000Z")
    octanist_server.add_lead(
        id="lead_full",
        createdAt="2026-03-02T00:00:00.000Z",
        value=3,
        gclid="abc",
        currency="EUR",
        status="won",
    )
    target = tmp_path / "leads.parquet"
    run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export", path=f"file://{target}", page_size=1, format="parquet"
        )
    )
    table = pq.read_table(target)
    assert [row["id"] for row in table.to_pylist()] == ["lead_sparse", "lead_full"]
    assert table.to_pylist()[1]["gclid"] == "abc"
    assert len(table.schema) == len(_formats.LEAD_COLUMNS) + 1


@needs_pyarrow
def test_parquet_keeps_unknown_fields_and_misfits_as_json(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from airflow_provider_octanist.transfers._formats import LEAD_COLUMNS, ParquetWriter

    path = tmp_path / "x.parquet"
    with path.open("wb") as stream:
        writer = ParquetWriter(stream, LEAD_COLUMNS)
        writer.write([{"id": "lead_1", "value": "a lot", "custom": {"a": [1, 2]}, "newField": {"x": 1}}])
        writer.close()
    row = pq.read_table(path).to_pylist()[0]
    assert row["value"] is None
    assert row["custom"] == '{"a":[1,2]}'
    assert json.loads(row["extra_fields"]) == {"newField": {"x": 1}, "value": "a lot"}


@needs_pyarrow
def test_ad_spend_parquet_takes_its_columns_from_the_first_page(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "spend.parquet"
    summary = run(
        OctanistAdSpendToObjectStorageOperator(
            task_id="spend", path=f"file://{target}", start_day="2026-03-01", end_day="2026-03-05",
            page_size=3, format="parquet",
        )
    )  # fmt: skip
    table = pq.read_table(target)
    assert table.num_rows == summary["rows"] == 10
    assert table.column_names == [
        "date",
        "platform",
        "spend",
        "currency",
        "clicks",
        "impressions",
        "extra_fields",
    ]
    assert str(table.schema.field("clicks").type) == "int64"


def test_parquet_without_pyarrow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"pip install 'airflow-provider-octanist\[parquet\]'"):
        OctanistLeadsToObjectStorageOperator(task_id="export", path="file:///tmp/x.parquet", format="parquet")


# -- ad spend -----------------------------------------------------------------------------------


def test_ad_spend_every_page_is_written(octanist_server: Any, octanist_conn: str, tmp_path: Path) -> None:
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    expected = OctanistHook().get_ad_spend("2026-03-01", "2026-03-31", platform="google_ads")
    octanist_server.clear_requests()
    target = tmp_path / "spend.jsonl.gz"
    summary = run(
        OctanistAdSpendToObjectStorageOperator(
            task_id="spend",
            path="file://" + str(tmp_path) + "/spend.jsonl.gz",
            start_day="{{ ds }}",
            end_day="2026-03-31",
            platform="google_ads",
            page_size=7,
            compression="gzip",
        ),
        {"ds": "2026-03-01"},
    )
    assert [json.loads(line) for line in gzip.decompress(target.read_bytes()).splitlines()] == expected
    assert summary["rows"] == 31
    assert "by_status" not in summary
    assert octanist_server.request_count("POST", "/api/ad-spend") == 5
    assert octanist_server.requests[0].body == {
        "startDate": "2026-03-01", "endDate": "2026-03-31", "limit": 7, "page": 1, "platform": "google_ads"
    }  # fmt: skip


# -- construction-time checks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "csv"}, "format must be 'jsonl' or 'parquet'"),
        ({"compression": "zstd"}, "compression must be None or 'gzip'"),
        ({"format": "parquet", "compression": "gzip"}, "compression applies to JSON Lines only"),
        ({"path": ""}, "path must be a URL"),
        ({"path": 42}, "path must be a URL string"),
        ({"storage_conn_id": ""}, "storage_conn_id must be a connection id"),
        ({"page_size": 101}, "page_size must be between 1 and 100"),
        ({"max_results": 0}, "max_results must be at least 1"),
        ({"extra_filters": {"colour": "red"}}, "Unknown lead filter"),
        ({"octanist_conn_id": ""}, "octanist_conn_id must be a connection id"),
    ],
)
def test_bad_arguments_are_rejected_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "export", "path": "file:///tmp/x.jsonl", **kwargs}
    with pytest.raises(ValueError, match=message):
        OctanistLeadsToObjectStorageOperator(**arguments)


def test_a_path_without_a_scheme_is_rejected_when_the_task_runs(octanist_conn: str) -> None:
    op = OctanistLeadsToObjectStorageOperator(task_id="export", path="{{ params.p }}")
    with pytest.raises(ValueError, match="path must be a URL with a scheme"):
        run(op, {"params": {"p": "/tmp/leads.jsonl"}})


def test_an_object_storage_path_and_a_storage_conn_id_are_not_both_given() -> None:
    target = _storage.object_storage_path("file:///tmp/x.jsonl")
    with pytest.raises(ValueError, match="carries its own connection"):
        OctanistLeadsToObjectStorageOperator(task_id="export", path=target, storage_conn_id="aws_default")


# -- Airflow 2.11 and 3.x -----------------------------------------------------------------------


def test_airflow_io_is_the_task_sdk_on_airflow_3() -> None:
    pytest.importorskip("airflow.sdk.io")
    import airflow.sdk.io

    assert _storage.airflow_io() is airflow.sdk.io


def test_airflow_io_falls_back_to_airflow_io_on_airflow_2(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    legacy = types.ModuleType("airflow.io")
    monkeypatch.setitem(sys.modules, "airflow.sdk.io", None)  # what an Airflow without the Task SDK has
    monkeypatch.setitem(sys.modules, "airflow.io", legacy)
    monkeypatch.setattr("airflow.io", legacy, raising=False)
    assert _storage.airflow_io() is legacy


@pytest.mark.parametrize("module", ["object_storage", "sql"])
def test_importing_the_transfers_pulls_in_no_storage_database_or_http_client(module: str) -> None:
    code = (
        "import sys; from airflow.providers.common.compat.sdk import BaseOperator; "
        "before = set(sys.modules); "
        f"import airflow_provider_octanist.transfers.{module}; "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    added = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = (
        "fsspec",
        "upath",
        "pyarrow",
        "requests",
        "httpx",
        "airflow_provider_octanist.hooks",
        "pendulum.pars",
        "airflow.providers.common.sql",
        "concurrent.futures.thread",
        "openlineage",
        "airflow.providers.openlineage",
        "airflow.providers.common.compat.openlineage",
    )
    assert [name for name in added if name.startswith(heavy)] == []


def test_provider_info_registers_the_transfer_module() -> None:
    import importlib

    from airflow_provider_octanist import get_provider_info

    [entry] = [e for e in get_provider_info()["transfers"] if e["source-integration-name"] == "Octanist"]
    module = importlib.import_module(entry["python-module"])
    assert module.OctanistLeadsToObjectStorageOperator is OctanistLeadsToObjectStorageOperator


def test_an_objectstoragepath_that_rejects_the_url_says_which_universal_pathlib_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    path_module = importlib.import_module(f"{_storage.airflow_io().__name__}.path")

    def incompatible(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("ObjectStoragePath(...) detected protocol file which is incompatible")

    monkeypatch.setattr(path_module, "ObjectStoragePath", incompatible)
    with pytest.raises(RuntimeError, match=r"universal-pathlib<0\.3"):
        _storage.object_storage_path("file:///tmp/x.jsonl")


# -- a path that names no object; Parquet that rounds nothing ------------------------------------


def test_a_path_that_is_an_existing_directory_is_refused_before_any_request(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_lead()
    (tmp_path / "kept.txt").write_text("already here")

    with pytest.raises(ValueError, match=r"is an existing directory, not an object; add the name"):
        run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{tmp_path}"))

    assert octanist_server.requests == []
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"], "no hidden temporary file was left"


@pytest.mark.parametrize("suffix", ["out/", "out/leads/"])
def test_a_path_ending_in_a_slash_is_refused_before_any_request(
    octanist_server: Any, octanist_conn: str, tmp_path: Path, suffix: str
) -> None:
    with pytest.raises(ValueError, match=r"ends with '/', so it names a folder, not an object"):
        run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{tmp_path}/{suffix}"))

    assert octanist_server.requests == []
    assert list(tmp_path.iterdir()) == []


def test_an_object_store_prefix_holding_objects_is_refused(octanist_server: Any, octanist_conn: str) -> None:
    folder = memory_path().rsplit("/", 1)[0]
    run(OctanistLeadsToObjectStorageOperator(task_id="first", path=f"{folder}/day-1.jsonl"))
    octanist_server.clear_requests()

    with pytest.raises(ValueError, match="is an existing directory"):
        run(OctanistLeadsToObjectStorageOperator(task_id="export", path=folder))
    assert octanist_server.requests == []


@needs_pyarrow
def test_parquet_keeps_the_microseconds_octanist_sends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq
    from conftest import connection_json

    from airflow_provider_octanist.testing import FakeOctanistServer

    with FakeOctanistServer(timestamp_precision="us") as server:
        monkeypatch.setenv("AIRFLOW_CONN_OCTANIST_DEFAULT", connection_json(server.url, server.api_key))
        server.add_lead(id="lead_us", updatedAt="2026-03-01T10:00:00.123456Z")
        target = tmp_path / "leads.parquet"
        run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", format="parquet"))

    row = pq.read_table(target).to_pylist()[0]
    assert row["updatedAt"] == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert row["extra_fields"] is None


@needs_pyarrow
def test_a_lead_value_a_float_would_round_is_kept_whole_in_parquet_extra_fields(
    octanist_server: Any, octanist_conn: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    octanist_server.add_lead(id="lead_big", value=2**53 + 1)
    octanist_server.add_lead(id="lead_fits", value=2**53)
    target = tmp_path / "leads.parquet"
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", format="parquet"))

    big, fits = pq.read_table(target).to_pylist()
    assert big["value"] is None
    assert json.loads(big["extra_fields"]) == {"value": 2**53 + 1}
    assert fits["value"] == float(2**53)
    assert fits["extra_fields"] is None


@needs_pyarrow
def test_what_no_parquet_column_type_holds_exactly_goes_to_extra_fields(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from airflow_provider_octanist.transfers._formats import ParquetWriter

    columns = (("clicks", "int"), ("spend", "float"), ("at", "timestamp"))
    rows = [
        {"clicks": 2**63, "spend": 10**400, "at": "2026-03-01T10:00:00.1234567Z"},
        {"clicks": -(2**63), "spend": 0.1, "at": "2026-03-01T10:00:00.123456000Z"},
    ]
    path = tmp_path / "x.parquet"
    with path.open("wb") as stream:
        writer = ParquetWriter(stream, columns)
        writer.write(rows)
        writer.close()

    misfits, fits = pq.read_table(path).to_pylist()
    assert (misfits["clicks"], misfits["spend"], misfits["at"]) == (None, None, None)
    assert json.loads(misfits["extra_fields"]) == {
        "clicks": 2**63,
        "spend": 10**400,
        "at": "2026-03-01T10:00:00.1234567Z",
    }
    assert fits["clicks"] == -(2**63)
    assert fits["spend"] == 0.1
    assert fits["at"] == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    assert fits["extra_fields"] is None


# -- the write-back from an object ------------------------------------------------------------


def test_a_missing_object_is_named_in_the_error(octanist_conn: str, tmp_path: Path) -> None:
    missing = (tmp_path / "nowhere.csv").as_uri()

    with pytest.raises(FileNotFoundError, match=f"There is no object at {missing} to read the rows from"):
        run(from_csv(missing))
