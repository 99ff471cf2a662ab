"""
Run every benchmark of the provider and print one markdown table of medians, goals and peers.

``make bench`` (``python bench/run.py``) measures at the sizes the goals are stated for: about
fifteen minutes on two cores, ten more for the daily write-back of 100,000 rows (``--only`` picks
benchmarks). ``make bench-smoke`` (``python bench/run.py --smoke``) runs everything at tiny sizes
so the benchmarks cannot rot: it prints the table and exits 0 whatever the timings, and non-zero
only when a benchmark crashed or reported a wrong result (a missed or doubled lead).

Each benchmark runs in a process of its own (``bench/<name>.py``, runnable alone too). The table
is also written to ``.bench/results.md`` and ``.bench/results.json``.

``python bench/run.py [--smoke] [--only NAME ...] [--out DIR]``, NAME among parse, hook, triggerer,
feed, events, export, write-back, write-back-state, size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from _common import (
    BENCH_DIR,
    REPO_ROOT,
    Row,
    child_env,
    crashed_row,
    machine_facts,
    markdown_table,
    notes,
    rows_from_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

# name -> script; ours write their rows as JSON, the event-trigger benchmark prints a table.
BENCHMARKS: dict[str, str] = {
    "parse": "parse_cost.py",
    "hook": "hook_overhead.py",
    "triggerer": "triggerer_scale.py",
    "feed": "status_feed_scale.py",
    "events": "bench_event_trigger.py",
    "export": "export_stream.py",
    "write-back": "write_back.py",
    "write-back-state": "write_back_state.py",
    "size": "size_cap.py",
}
TIMEOUT_SECONDS = {
    "parse": 600,
    "hook": 300,
    "triggerer": 900,
    "feed": 1200,
    "events": 600,
    "export": 900,
    "write-back": 900,
    "write-back-state": 1800,
    "size": 900,
}


class BenchmarkError(Exception):
    """A benchmark crashed, timed out or printed nothing we can read."""


def _run(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
            cwd=REPO_ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"timed out after {timeout:.0f} s") from exc


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stderr or done.stdout or "")[-4000:]


def run_own(name: str, smoke: bool) -> list[Row]:
    """Run one of our benchmark scripts and read the rows it wrote."""
    with tempfile.TemporaryDirectory(prefix="octanist-bench-") as tmp:
        out = Path(tmp) / "rows.json"
        args = [str(BENCH_DIR / BENCHMARKS[name]), "--json", str(out), *(["--smoke"] if smoke else [])]
        done = _run(args, TIMEOUT_SECONDS[name])
        if done.returncode != 0 or not out.exists():
            raise BenchmarkError(f"exit {done.returncode}:\n{_tail(done)}")
        return rows_from_json(out)


_EVENT_HEADER = re.compile(r"Watching ([\d,]+) leads, poll interval ([\d.]+) s")
# | k | polls measured | requests per poll (max) | goal | latency "p50 / max" or "-" | each lead once |
_EVENT_ROW = re.compile(r"^\|" + r"\s*(\d+)\s*\|" * 4 + r"\s*([^|]+?)\s*\|\s*(\w+)\s*\|$")


def event_rows(output: str) -> list[Row]:
    """Turn the event-trigger benchmark's table into rows: requests per poll and detection latency per k."""
    header = _EVENT_HEADER.search(output)
    if header is None:
        raise BenchmarkError(f"no result table in its output:\n{output[-2000:]}")
    leads, interval = header.group(1), float(header.group(2))
    rows: list[Row] = []
    for line in output.splitlines():
        match = _EVENT_ROW.match(line.strip())
        if match is None:
            continue
        k, polls, requests, goal = (int(match.group(i)) for i in range(1, 5))
        latency, once = match.group(5), match.group(6).lower() == "yes"
        rows.append(
            Row(
                figure=f"Event trigger ({leads} leads, {interval:g} s interval): requests per poll, "
                f"k = {k} changed (max)",
                value=float(requests),
                unit="requests",
                goal=f"<= ceil(k/100)+1 = {goal}" + ("" if once else "; each lead once"),
                met=requests <= goal and once,
                runs=polls,
                note="" if once else "a changed lead was missed or reported twice",
            )
        )
        if latency != "-":
            p50, worst = (float(part) for part in latency.split("/"))
            rows.append(
                Row(
                    figure=f"Event trigger: detection latency, k = {k} (p50; max {worst:.2f} s)",
                    value=p50,
                    unit="s",
                    goal=f"<= poll interval + 1 s = {interval + 1:g} s",
                    met=worst <= interval + 1,
                    runs=polls,
                )
            )
    if not rows:
        raise BenchmarkError(f"its table had no rows:\n{output[-2000:]}")
    return rows


def run_events(smoke: bool) -> tuple[list[Row], bool]:
    """Run the event-trigger benchmark; return its rows and whether it reported a wrong result."""
    script = BENCH_DIR / BENCHMARKS["events"]
    if not script.exists():
        raise BenchmarkError(f"{script.name} is missing")
    done = _run([str(script), *(["--smoke"] if smoke else [])], TIMEOUT_SECONDS["events"])
    # It exits 1 when a goal is missed (in smoke mode only for a wrong result, never for a timing).
    if done.returncode not in (0, 1):
        raise BenchmarkError(f"exit {done.returncode}:\n{_tail(done)}")
    rows = event_rows(done.stdout)
    return rows, smoke and done.returncode == 1


def machine_text(facts: dict[str, str]) -> str:
    return (
        f"{facts['cpu']}, {facts['cores']} cores, {facts['memory']} RAM, {facts['os']}; "
        f"Python {facts['python']}, apache-airflow {facts['apache-airflow']}, "
        f"apache-airflow-providers-http {facts['apache-airflow-providers-http']}, httpx {facts['httpx']}, "
        f"requests {facts['requests']}, aiohttp {facts['aiohttp']}; "
        f"load average {facts['load_before']} before, {facts['load_after']} after"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks, print the table, write ``.bench/``; exit 1 only if one failed to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; never fails on a timing")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".bench", help="where results are written")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    facts = machine_facts()
    facts["load_before"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: list[Row] = []
    failed: list[str] = []
    started = time.monotonic()
    for name in names:
        began = time.monotonic()
        print(f"== {name}: running {BENCHMARKS[name]}{' (smoke)' if args.smoke else ''}", flush=True)
        try:
            if name == "events":
                found, wrong = run_events(args.smoke)
                if wrong:
                    failed.append(f"{name}: a wrong result (see the rows that are not met)")
            else:
                found = run_own(name, args.smoke)
        except BenchmarkError as exc:
            print(f"== {name}: FAILED {exc}", file=sys.stderr, flush=True)
            failed.append(f"{name}: {str(exc).splitlines()[0]}")
            found = [crashed_row(name, str(exc).splitlines()[0])]
        rows.extend(found)
        print(f"== {name}: {time.monotonic() - began:.0f} s", flush=True)
    facts["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    took = time.monotonic() - started
    text = "\n\n".join(
        [
            f"Benchmarks{' (smoke: tiny sizes, timings mean nothing)' if args.smoke else ''}, {took:.0f} s",
            machine_text(facts),
            markdown_table(rows),
            notes(rows),
        ]
    )
    print()
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-smoke" if args.smoke else ""
    (args.out / f"results{suffix}.md").write_text(text + "\n", encoding="utf-8")
    (args.out / f"results{suffix}.json").write_text(
        json.dumps({"machine": facts, "seconds": took, "rows": [asdict(row) for row in rows]}, indent=1),
        encoding="utf-8",
    )
    if failed:
        print("\nFAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
