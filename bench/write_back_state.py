"""
Write-back with ``state_path``: a daily sync of 100,000 rows of which 1% changed since yesterday.

Yesterday's run (with ``state_path``) applies every row and leaves the state; today's input
differs from yesterday's in 1% of its rows (a new value). Today is then run twice over the same
rows, each in a fresh process against the same fake server (in a process of its own, answering at
once): without ``state_path`` (every row sent) and with a copy of yesterday's state (only the
changed rows sent). Side by side: the requests the server received, wall time, the peak RSS growth
of the task's process, and the state's size.

The fake server finds the lead of each update by its id at once, so the figures are the
operator's own: its requests, its time, its memory.

``python bench/write_back_state.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import csv
import json
import shutil
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
    peak_rss_bytes,
    rss_bytes,
    run_json,
)
from write_back import warm_up

if TYPE_CHECKING:
    from collections.abc import Sequence

FULL = {"rows": 100_000}
SMOKE = {"rows": 500}
CHANGED = 0.01


def _write_rows(path: Path, lead_ids: Sequence[str], changed: int) -> None:
    """One row per lead; the first ``changed`` rows (spread over the file) carry a new value."""
    step = max(1, len(lead_ids) // changed) if changed else 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "status", "value"])
        for index, lead_id in enumerate(lead_ids):
            moved = step and index % step == 0 and index // step < changed
            writer.writerow([lead_id, "won", 100 + index % 900 + (5_000 if moved else 0)])


def one_pass(url: str, rows_path: Path, state_path: str) -> int:
    """Run the operator over ``rows_path``, with ``state_path`` unless it is ``-``; print the figures."""
    warm_up(url, rows_path)
    from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

    before = rss_bytes()
    started = time.perf_counter()
    summary = ObjectStorageToOctanistLeadsOperator(
        task_id="write_back",
        path=rows_path.as_uri(),
        format="csv",
        state_path=None if state_path == "-" else state_path,
        octanist_conn_id=OCTANIST_CONN,
    ).execute({})
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "summary": summary, "growth": peak_rss_bytes() - before}))
    return 0


def _run_pass(server: ServerProcess, rows_path: Path, state: Path | None) -> dict[str, Any]:
    server.command("clear")
    args = [str(BENCH_DIR / "write_back_state.py"), "--pass", server.url, str(rows_path)]
    result: dict[str, Any] = run_json([*args, state.as_uri() if state else "-"], timeout=1800)
    result["requests"] = sum(len(times) for times in server.command("arrivals").values()) - 1
    return result  # less the test_connection GET


def measure(smoke: bool) -> list[Row]:
    """Yesterday with a state, then today without and with it; one row per figure."""
    rows = (SMOKE if smoke else FULL)["rows"]
    changed = round(rows * CHANGED)
    with tempfile.TemporaryDirectory(prefix="octanist-bench-write-back-state-") as tmp:
        yesterday, today = Path(tmp) / "yesterday.csv", Path(tmp) / "today.csv"
        state, copy = Path(tmp) / "state.json", Path(tmp) / "today-state.json"
        with ServerProcess(leads=rows) as server:
            _write_rows(yesterday, server.lead_ids, 0)
            _write_rows(today, server.lead_ids, changed)
            seed = _run_pass(server, yesterday, state)
            if seed["summary"]["updated"] != rows:
                raise RuntimeError(f"Yesterday's run updated {seed['summary']['updated']} of {rows} rows.")
            shutil.copyfile(state, copy)
            plain = _run_pass(server, today, None)
            kept = _run_pass(server, today, copy)
        state_bytes = copy.stat().st_size
    if plain["summary"]["updated"] != rows:
        raise RuntimeError(f"Without a state, {plain['summary']['updated']} of {rows} rows were updated.")
    if (kept["summary"]["updated"], kept["summary"]["unchanged"]) != (changed, rows - changed):
        raise RuntimeError(f"With the state: {kept['summary']['reconciliation']}, not {changed} changed.")
    size = f"{rows:,} rows, {changed:,} changed"
    return [
        Row(
            figure=f"Daily write-back ({size}): requests sent, with state_path",
            value=kept["requests"],
            unit="requests",
            goal="the changed rows only",
            met=kept["requests"] == changed,
            peer=plain["requests"],
            peer_name="without state_path",
            runs=1,
            note=f"yesterday's run with state_path, which built the state: {seed['seconds']:.1f} s",
        ),
        Row(
            figure=f"Daily write-back ({size}): wall time, with state_path",
            value=kept["seconds"],
            unit="s",
            goal="-",
            met=True,
            peer=plain["seconds"],
            peer_name="without state_path",
            runs=1,
            note="the fake server answers at once, so the time without a state is the least it can be",
        ),
        Row(
            figure=f"Daily write-back ({size}): peak RSS growth, with state_path",
            value=kept["growth"] / 1e6,
            unit="MB",
            goal="-",
            met=True,
            peer=plain["growth"] / 1e6,
            peer_name="without state_path",
            runs=1,
            note="peak RSS of the task's process above its RSS just before the task",
        ),
        Row(
            figure=f"Daily write-back ({rows:,} leads): the state's size",
            value=state_bytes / 1e6,
            unit="MB",
            goal="-",
            met=True,
            runs=1,
            note=f"{state_bytes / rows:.0f} bytes per lead, JSON",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them); or be one pass."""
    children = {"--pass": lambda args: one_pass(args[0], Path(args[1]), args[2])}
    return bench_main(__doc__ or "", measure, argv, children)


if __name__ == "__main__":
    sys.exit(main())
