"""What the transfer tests share: running an operator as Airflow does, writing rows, reading reports."""

from __future__ import annotations

import csv
import gzip
import json
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer

needs_pyarrow = pytest.mark.skipif(
    find_spec("pyarrow") is None,
    reason="pyarrow is not installed (pip install 'airflow-provider-octanist[parquet]')",
)


def run(operator: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the operator's templates with ``context`` the way Airflow does, then execute it."""
    context = context or {}
    operator.render_template_fields(context)
    result: dict[str, Any] = operator.execute(context)
    assert json.loads(json.dumps(result)) == result, "the summary goes to XCom and must be plain JSON"
    return result


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
