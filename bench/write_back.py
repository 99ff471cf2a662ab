"""
Write-back: ``ObjectStorageToOctanistLeadsOperator`` updating leads from a CSV file.

Two figures. **Speed**: 2,000 rows against the fake server answering every request after 20 ms,
the operator at its default concurrency (8) against a sequential ``OctanistHook.update_lead`` loop
over the same rows (what a hand-written sync does); the goal is a ratio of at least 5. **Memory**:
the peak RSS growth of a process checking 200,000 rows as a dry run and writing the report of one
JSON line per row (everything imported before, the file on disk); the goal is under 50 MB. Each
pass runs in a fresh process, sides alternate, and every pass must update every lead.

The fake server runs in a process of its own (``_server.py``), with its 20 ms of latency per answer.

``python bench/write_back.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (
    BENCH_DIR,
    OCTANIST_CONN,
    Row,
    ServerProcess,
    bench_main,
    connection_uri_json,
    median,
    peak_rss_bytes,
    rss_bytes,
    run_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

GOAL_RATIO = 5.0
GOAL_RSS_MB = 50.0
LATENCY = 0.02
FULL = {"rows": 2_000, "rounds": 3, "memory_rows": 200_000}
SMOKE = {"rows": 100, "rounds": 1, "memory_rows": 2_000}


def _write_rows(path: Path, lead_ids: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "status", "value"])
        for index, lead_id in enumerate(lead_ids):
            writer.writerow([lead_id, "won", 100 + index % 900])


def warm_up(url: str, rows_path: Path) -> None:
    """Before a pass is measured: what a task runner has done before any task starts, and the imports."""
    os.environ[f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}"] = connection_uri_json(url)
    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.transfers import _storage

    _storage.object_storage_path(rows_path.as_uri())  # fsspec and ObjectStoragePath imported, both sides
    from airflow.providers.common.compat.sdk import get_hook_lineage_collector

    get_hook_lineage_collector()  # a task runner has loaded the plugins before any task starts
    OctanistHook(OCTANIST_CONN).test_connection()  # the settings read, both sides


def one_pass(side: str, url: str, rows_path: Path) -> int:
    """Update every lead of ``rows_path`` once, by ``side`` (``operator`` or ``loop``); print the result."""
    warm_up(url, rows_path)
    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

    before = rss_bytes()
    started = time.perf_counter()
    if side == "operator":
        operator = ObjectStorageToOctanistLeadsOperator(
            task_id="write_back", path=rows_path.as_uri(), format="csv", octanist_conn_id=OCTANIST_CONN
        )
        updated = operator.execute({})["updated"]
    else:
        updated = 0
        with OctanistHook(OCTANIST_CONN) as hook, rows_path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                hook.update_lead(lead_id=row["id"], status=row["status"], value=row["value"])
                updated += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "updated": updated, "growth": peak_rss_bytes() - before}))
    return 0


def memory_pass(rows_path: Path, report_path: Path) -> int:
    """Check every row of ``rows_path`` as a dry run with a report; print the peak RSS growth."""
    os.environ[f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}"] = connection_uri_json("http://127.0.0.1:9/api")
    from airflow_provider_octanist.transfers import _storage
    from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

    _storage.object_storage_path(rows_path.as_uri())
    from airflow.providers.common.compat.sdk import get_hook_lineage_collector

    get_hook_lineage_collector()
    before = rss_bytes()
    started = time.perf_counter()
    summary = ObjectStorageToOctanistLeadsOperator(
        task_id="write_back",
        path=rows_path.as_uri(),
        format="csv",
        report_path=report_path.as_uri(),
        dry_run=True,
        octanist_conn_id=OCTANIST_CONN,
    ).execute({})
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "valid": summary["valid"], "growth": peak_rss_bytes() - before}))
    return 0


def _run_pass(*args: str) -> dict[str, Any]:
    result: dict[str, Any] = run_json([str(BENCH_DIR / "write_back.py"), *args], timeout=900)
    return result


def measure(smoke: bool) -> list[Row]:
    """Alternate operator and loop passes over the same rows; then one dry run of many rows for memory."""
    sizes = SMOKE if smoke else FULL
    rows = sizes["rows"]
    passes: dict[str, list[dict[str, Any]]] = {"operator": [], "loop": []}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="octanist-bench-write-back-") as tmp:
        rows_path = Path(tmp) / "rows.csv"
        with ServerProcess(leads=rows, latency=LATENCY) as server:
            _write_rows(rows_path, server.lead_ids)
            for index in range(sizes["rounds"]):
                order = ("operator", "loop") if index % 2 else ("loop", "operator")
                measured = {side: _run_pass("--pass", side, server.url, str(rows_path)) for side in order}
                for side, result in measured.items():
                    if result["updated"] != rows:
                        raise RuntimeError(f"The {side} pass updated {result['updated']} of {rows} leads.")
                    passes[side].append(result)
                ratios.append(measured["loop"]["seconds"] / measured["operator"]["seconds"])
        memory_rows = sizes["memory_rows"]
        big = Path(tmp) / "many.csv"
        _write_rows(big, [f"lead_{index:012x}" for index in range(memory_rows)])
        memory = _run_pass("--memory", str(big), str(Path(tmp) / "report.jsonl"))
        if memory["valid"] != memory_rows:
            raise RuntimeError(f"The dry run found {memory['valid']} of {memory_rows} rows valid.")
    operator_rate = rows / median(p["seconds"] for p in passes["operator"])
    loop_rate = rows / median(p["seconds"] for p in passes["loop"])
    ratio = median(ratios)
    growth = memory["growth"] / 1e6
    return [
        Row(
            figure=f"Write-back: {rows:,} rows, 20 ms per request, ObjectStorageToOctanistLeadsOperator",
            value=operator_rate,
            unit="rows/s",
            goal=f"ratio >= {GOAL_RATIO:g}",
            met=ratio >= GOAL_RATIO,
            peer=loop_rate,
            peer_name="update_lead loop",
            ratio=ratio,
            ratio_note="of the loop",
            runs=sizes["rounds"],
            note="default max_concurrency (8) against one update_lead at a time, each pass in a fresh "
            f"process; per round: {', '.join(f'{r:.2f}' for r in ratios)}; peak RSS growth of the "
            f"operator's passes {max(p['growth'] for p in passes['operator']) / 1e6:.1f} MB",
        ),
        Row(
            figure=f"Write-back: {memory_rows:,} rows checked (dry run) with a report, peak RSS growth",
            value=growth,
            unit="MB",
            goal=f"< {GOAL_RSS_MB:g} MB",
            met=growth < GOAL_RSS_MB,
            runs=1,
            note=f"peak RSS of the process above its RSS just before the task; {memory['seconds']:.1f} s",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them); or be one pass."""
    children = {
        "--pass": lambda args: one_pass(args[0], args[1], Path(args[2])),
        "--memory": lambda args: memory_pass(Path(args[0]), Path(args[1])),
    }
    return bench_main(__doc__ or "", measure, argv, children)


if __name__ == "__main__":
    sys.exit(main())
