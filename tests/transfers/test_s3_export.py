"""The exports on real S3: the Amazon provider and s3fs against moto's S3 server on loopback.

Needs the ``s3`` dependency group (the Amazon provider with s3fs, boto3, moto). ``make test`` installs
it and sets ``OCTANIST_REQUIRE_S3``, so there a missing piece fails; elsewhere (the older matrix lines,
``GROUPS=test``) these tests are skipped, saying what to install.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import uuid
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.exceptions import OctanistServerError
from airflow_provider_octanist.transfers.object_storage import (
    OctanistAdSpendToObjectStorageOperator,
    OctanistLeadsToObjectStorageOperator,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

REQUIRE_ENV = "OCTANIST_REQUIRE_S3"
S3_MODULES = ("moto", "boto3", "s3fs", "airflow.providers.amazon")
STORAGE_CONN_ID = "aws_octanist_tests"
REGION = "us-east-1"


def _missing_modules() -> list[str]:
    missing = []
    for name in S3_MODULES:
        try:
            if find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:  # a parent package is absent
            missing.append(name)
    return missing


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on an ephemeral loopback port, for this module; its endpoint URL."""
    missing = _missing_modules()
    if missing:
        reason = (
            f"the s3 dependency group is not installed (missing {', '.join(missing)}): pip install --group s3"
        )
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}")
        pytest.skip(reason)
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and an ``aws`` connection (fake keys) that points at the moto server."""
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{STORAGE_CONN_ID.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing-access-key",
                "password": "testing-secret-key",
                "extra": {"endpoint_url": moto_endpoint, "region_name": REGION},
            }
        ),
    )
    name = f"lake-{uuid.uuid4().hex[:12]}"
    client(moto_endpoint).create_bucket(Bucket=name)
    return name


def client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing-access-key",
        aws_secret_access_key="testing-secret-key",
    )


def keys(endpoint: str, bucket: str) -> list[str]:
    listed = client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def open_uploads(endpoint: str, bucket: str) -> list[str]:
    return [u["Key"] for u in client(endpoint).list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def body(endpoint: str, bucket: str, key: str) -> bytes:
    data: bytes = client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


@pytest.fixture
def s3_calls(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The S3 API operations s3fs sends, in order (its one door to botocore, observed, not changed)."""
    from fsspec.asyn import sync_wrapper
    from s3fs.core import S3FileSystem

    calls: list[str] = []
    original = S3FileSystem._call_s3

    async def recording(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return await original(self, method, *args, **kwargs)

    monkeypatch.setattr(S3FileSystem, "_call_s3", recording)
    # The files' own calls (PUT, parts) go through the sync twin, bound to the original.
    monkeypatch.setattr(S3FileSystem, "call_s3", sync_wrapper(recording))
    return calls


def run(operator: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    context = context or {}
    operator.render_template_fields(context)
    result: dict[str, Any] = operator.execute(context)
    return result


def fail_from_page(server: Any, page: int) -> None:
    """Answer the pages before ``page``, then 500 until the hook gives up (it retries 3 times)."""
    server.inject("delay", seconds=0, count=page - 1, method="GET", path="/api/leads")
    server.inject("status", status=500, count=4, method="GET", path="/api/leads")


def test_leads_land_in_s3_as_gzip_json_lines_and_read_back_whole(
    octanist_server: Any, octanist_conn: str, moto_endpoint: str, bucket: str
) -> None:
    added = octanist_server.add_leads(23, note="called back")
    key = "octanist/leads/2026-03-01.jsonl.gz"
    summary = run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export",
            path=f"s3://{bucket}/octanist/leads/{{{{ ds }}}}.jsonl.gz",
            storage_conn_id=STORAGE_CONN_ID,
            compression="gzip",
            page_size=5,
        ),
        {"ds": "2026-03-01"},
    )
    raw = body(moto_endpoint, bucket, key)
    assert [json.loads(line) for line in gzip.decompress(raw).splitlines()] == added
    assert keys(moto_endpoint, bucket) == [key]
    assert open_uploads(moto_endpoint, bucket) == []
    assert summary["path"] == f"s3://{bucket}/{key}"
    assert (summary["rows"], summary["bytes"]) == (23, len(raw))


def test_leads_land_in_s3_as_parquet(
    octanist_server: Any, octanist_conn: str, moto_endpoint: str, bucket: str
) -> None:
    if find_spec("pyarrow") is None:
        pytest.skip("pyarrow is not installed (pip install 'airflow-provider-octanist[parquet]')")
    import pyarrow.parquet as pq

    added = octanist_server.add_leads(12, status="won", value=250)
    summary = run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export",
            path=f"s3://{bucket}/octanist/leads.parquet",
            storage_conn_id=STORAGE_CONN_ID,
            format="parquet",
            page_size=5,
        )
    )
    table = pq.read_table(io.BytesIO(body(moto_endpoint, bucket, "octanist/leads.parquet")))
    rows = table.select(["id", "status", "value"]).to_pylist()
    assert rows == [{"id": lead["id"], "status": "won", "value": 250.0} for lead in added]
    assert summary["rows"] == 12
    assert keys(moto_endpoint, bucket) == ["octanist/leads.parquet"]


def test_ad_spend_lands_in_s3_as_json_lines(
    octanist_server: Any, octanist_conn: str, moto_endpoint: str, bucket: str
) -> None:
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    expected = OctanistHook().get_ad_spend("2026-03-01", "2026-03-31")
    summary = run(
        OctanistAdSpendToObjectStorageOperator(
            task_id="spend",
            path=f"s3://{bucket}/octanist/ad-spend/2026-03.jsonl",
            storage_conn_id=STORAGE_CONN_ID,
            start_day="2026-03-01",
            end_day="2026-03-31",
            page_size=7,
        )
    )
    raw = body(moto_endpoint, bucket, "octanist/ad-spend/2026-03.jsonl")
    assert [json.loads(line) for line in raw.splitlines()] == expected
    assert summary["rows"] == len(expected) > 0
    assert keys(moto_endpoint, bucket) == ["octanist/ad-spend/2026-03.jsonl"]


def test_an_export_writes_a_temporary_key_then_copies_and_deletes_it(
    octanist_server: Any, octanist_conn: str, moto_endpoint: str, bucket: str, s3_calls: list[str]
) -> None:
    # The S3 operations a successful export needs, so docs/export.md can list their IAM actions.
    octanist_server.add_leads(3)
    run(
        OctanistLeadsToObjectStorageOperator(
            task_id="export", path=f"s3://{bucket}/leads.jsonl", storage_conn_id=STORAGE_CONN_ID
        )
    )
    assert set(s3_calls) == {"put_object", "head_object", "list_objects_v2", "copy_object", "delete_objects"}
    assert s3_calls.index("put_object") < s3_calls.index("copy_object") < s3_calls.index("delete_objects")
    assert keys(moto_endpoint, bucket) == ["leads.jsonl"]


def test_a_failure_mid_stream_leaves_no_object_and_sends_nothing_to_s3(
    octanist_server: Any, octanist_conn: str, moto_endpoint: str, bucket: str, s3_calls: list[str]
) -> None:
    octanist_server.add_leads(20)
    fail_from_page(octanist_server, 3)
    with pytest.raises(OctanistServerError):
        run(
            OctanistLeadsToObjectStorageOperator(
                task_id="export",
                path=f"s3://{bucket}/leads.jsonl.gz",
                storage_conn_id=STORAGE_CONN_ID,
                compression="gzip",
                page_size=5,
            )
        )
    assert keys(moto_endpoint, bucket) == []
    assert open_uploads(moto_endpoint, bucket) == []
    # The partial export was never uploaded: no write at all, only the look for a leftover.
    assert not {"put_object", "create_multipart_upload", "upload_part", "copy_object"} & set(s3_calls)


def test_a_failure_after_parts_were_uploaded_aborts_the_multipart_upload(
    octanist_server: Any,
    octanist_conn: str,
    moto_endpoint: str,
    bucket: str,
    s3_calls: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from s3fs.core import S3FileSystem

    # s3fs uploads in parts once its buffer holds a block (50 MiB by default; 5 MiB, S3's smallest
    # part, here), so a failure after 6 MiB has parts on S3 to abort. A connection of its own, so
    # Airflow makes a file system for it with that block size rather than reuse the cached one.
    monkeypatch.setattr(S3FileSystem, "default_block_size", 5 * 2**20)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{STORAGE_CONN_ID.upper()}_PARTS", os.environ[f"AIRFLOW_CONN_{STORAGE_CONN_ID.upper()}"]
    )
    octanist_server.add_leads(800, note="n" * 10_000)
    fail_from_page(octanist_server, 7)
    with pytest.raises(OctanistServerError):
        run(
            OctanistLeadsToObjectStorageOperator(
                task_id="export",
                path=f"s3://{bucket}/big/leads.jsonl",
                storage_conn_id=f"{STORAGE_CONN_ID}_parts",
                page_size=100,
            )
        )
    assert "upload_part" in s3_calls, f"no part was uploaded, so nothing was tested: {s3_calls}"
    assert "abort_multipart_upload" in s3_calls
    assert "complete_multipart_upload" not in s3_calls
    assert open_uploads(moto_endpoint, bucket) == []
    assert keys(moto_endpoint, bucket) == []


def test_a_failed_export_keeps_the_previous_object_whole(
    octanist_server: Any, octanist_conn: str, moto_endpoint: str, bucket: str
) -> None:
    octanist_server.add_leads(10)
    path = f"s3://{bucket}/leads.jsonl"
    run(OctanistLeadsToObjectStorageOperator(task_id="export", path=path, storage_conn_id=STORAGE_CONN_ID))
    before = body(moto_endpoint, bucket, "leads.jsonl")
    fail_from_page(octanist_server, 2)
    with pytest.raises(OctanistServerError):
        run(
            OctanistLeadsToObjectStorageOperator(
                task_id="export", path=path, storage_conn_id=STORAGE_CONN_ID, page_size=5
            )
        )
    assert body(moto_endpoint, bucket, "leads.jsonl") == before
    assert keys(moto_endpoint, bucket) == ["leads.jsonl"]
