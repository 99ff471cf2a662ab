"""
Streaming export: ``OctanistLeadsToObjectStorageOperator`` writing 200,000 leads to a local file.

Two figures. **Memory**: the peak RSS of the exporting process above its RSS just before the
export (everything imported, nothing fetched); the goal is that it does not grow with the number
of leads (<= 50 MB for 200,000). **Throughput**: leads per second of the operator against the
same leads written by hand (``OctanistHook.iter_leads`` and one ``json`` line per lead, the lines
the operator writes), both to a ``file://`` JSON Lines file; the goal is a ratio >= 0.9. Each pass
runs in a fresh process (so one pass's memory cannot hide in another's), sides alternate, the two
files must be byte-identical, and the ratio is the median over rounds of hand time / operator time.

The fake server runs in a process of its own. It recomputes the whole filtered, sorted selection
for every page (a few tenths of a second with 200,000 leads, for 2,000 pages), which would measure
the fake rather than the export, so here it serves every page of a listing from one snapshot of
that selection (its leads do not change during the benchmark).

``python bench/export_stream.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (
    API_KEY,
    BENCH_DIR,
    OCTANIST_CONN,
    Row,
    bench_main,
    child_env,
    connection_uri_json,
    median,
    peak_rss_bytes,
    rss_bytes,
    run_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

GOAL_RATIO = 0.9
GOAL_RSS_MB = 50.0
FULL = {"leads": 200_000, "rounds": 7}
SMOKE = {"leads": 2_000, "rounds": 1}


# -- the server process -------------------------------------------------------------------------


def serve(leads: int) -> int:
    """Serve ``leads`` leads until stdin closes or says ``quit``; print ``{"url"}`` once listening."""
    from airflow_provider_octanist.testing import FakeOctanistServer
    from airflow_provider_octanist.testing import server as fake

    class SnapshotServer(FakeOctanistServer):
        """The fake server, with each listing's selection computed once instead of once per page."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._snapshots: dict[Any, list[dict[str, Any]]] = {}
            self._selected: list[dict[str, Any]] = []

        def _paginate(self, rows: list[Any], limit: int, page: int) -> tuple[list[Any], dict[str, Any]]:
            self._selected = rows
            return super()._paginate(rows, limit, page)

        def _list_leads(self, query: dict[str, list[str]]) -> Any:
            key = tuple(
                sorted((name, tuple(v)) for name, v in query.items() if name not in ("page", "limit"))
            )
            snapshot = self._snapshots.get(key)
            if snapshot is None or "fields" in query:
                answer = super()._list_leads(query)
                self._snapshots[key] = self._selected
                return answer
            limit, page = int(query["limit"][0]), int(query.get("page", ["1"])[0])
            rows, pagination = self._paginate(snapshot, limit, page)
            return fake._ok([dict(row) for row in rows], pagination)

    with SnapshotServer(API_KEY) as server:
        for index in range(leads):
            server.add_lead(
                name=f"Bench Lead {index}",
                email=f"lead{index}@example.com",
                status=("open", "qualified", "won", "lost")[index % 4],
                value=index % 1000,
                utm_source="bench",
                createdAt=f"2026-01-{1 + index // 86_400 % 28:02d}T{index // 3600 % 24:02d}:"
                f"{index // 60 % 60:02d}:{index % 60:02d}.000Z",
            )
        print(json.dumps({"url": server.url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
    return 0


# -- one export pass, in a fresh process --------------------------------------------------------


def _digest(path: Path) -> str:
    """The file's SHA-256, read in chunks (holding two 180 MB files would bloat this process)."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def one_pass(side: str, url: str, out: Path) -> int:
    """Export every lead once, by ``side`` (``operator`` or ``hand``); print seconds and memory as JSON."""
    os.environ[f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}"] = connection_uri_json(url)
    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.transfers import _storage
    from airflow_provider_octanist.transfers.object_storage import OctanistLeadsToObjectStorageOperator

    _storage.object_storage_path(out.as_uri())  # fsspec and ObjectStoragePath imported, both sides
    # ObjectStoragePath reports every file it writes to the hook-lineage collector, whose first use
    # loads the plugins: a task runner has done that before any task starts, so it is done here too.
    from airflow.providers.common.compat.sdk import get_hook_lineage_collector

    get_hook_lineage_collector()
    hook = OctanistHook(OCTANIST_CONN)
    hook.list_leads_page(1, page_size=1)  # the session, its connection and the settings, both sides
    before = rss_bytes()
    started, used = time.perf_counter(), time.process_time()
    if side == "operator":
        operator = OctanistLeadsToObjectStorageOperator(
            task_id="export", path=f"file://{out}", octanist_conn_id=OCTANIST_CONN
        )
        operator.hook = hook  # the warmed hook (a cached_property), like the hand side's
        rows = operator.execute({})["rows"]
    else:
        encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
        rows = 0
        with open(out, "w", encoding="utf-8") as handle:
            for lead in hook.iter_leads(sort="createdAt:asc", page_size=100):
                handle.write(encode(lead) + "\n")
                rows += 1
    seconds, cpu = time.perf_counter() - started, time.process_time() - used
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rows": rows, "growth": peak_rss_bytes() - before}))
    return 0


def _run_pass(side: str, url: str, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = run_json(
        [str(BENCH_DIR / "export_stream.py"), "--pass", side, url, str(out)], timeout=900
    )
    return result


def measure(smoke: bool) -> list[Row]:
    """Alternate operator and by-hand passes over the same leads; one row for memory, one for speed."""
    sizes = SMOKE if smoke else FULL
    server = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / "export_stream.py"), "--serve", str(sizes["leads"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        passes: dict[str, list[dict[str, Any]]] = {"operator": [], "hand": []}
        ratios: list[float] = []
        with tempfile.TemporaryDirectory(prefix="octanist-bench-export-") as tmp:
            files = {side: Path(tmp) / f"{side}.jsonl" for side in passes}
            # One pass each first: the server computes its snapshot, the bytecode caches are written.
            for side in passes:
                _run_pass(side, url, files[side])
            if _digest(files["operator"]) != _digest(files["hand"]):
                raise RuntimeError("The operator and the by-hand export did not write the same bytes.")
            for index in range(sizes["rounds"]):
                order = ("operator", "hand") if index % 2 else ("hand", "operator")
                measured = {side: _run_pass(side, url, files[side]) for side in order}
                for side, result in measured.items():
                    if result["rows"] != sizes["leads"]:
                        raise RuntimeError(
                            f"The {side} pass exported {result['rows']} of {sizes['leads']} leads."
                        )
                    passes[side].append(result)
                ratios.append(measured["hand"]["seconds"] / measured["operator"]["seconds"])
            size_mb = files["operator"].stat().st_size / 1e6
    finally:
        if server.stdin is not None:
            server.stdin.write("quit\n")
            server.stdin.close()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    leads = sizes["leads"]
    growth = max(p["growth"] for p in passes["operator"]) / 1e6
    hand_growth = max(p["growth"] for p in passes["hand"]) / 1e6
    operator_rate = leads / median(p["seconds"] for p in passes["operator"])
    hand_rate = leads / median(p["seconds"] for p in passes["hand"])
    ratio = median(ratios)
    cpu = {side: median(p["cpu"] for p in runs) / leads * 1e6 for side, runs in passes.items()}
    return [
        Row(
            figure=f"Export: {leads:,} leads to a local JSON Lines file, peak RSS growth (max)",
            value=growth,
            unit="MB",
            goal=f"<= {GOAL_RSS_MB:g} MB",
            met=growth <= GOAL_RSS_MB,
            peer=hand_growth,
            peer_name="by hand",
            runs=sizes["rounds"],
            note=f"a {size_mb:.0f} MB file; peak RSS of the exporting process above its RSS just before "
            "the export",
        ),
        Row(
            figure="Export: throughput, OctanistLeadsToObjectStorageOperator",
            value=operator_rate,
            unit="leads/s",
            goal=f"ratio >= {GOAL_RATIO:g}",
            met=ratio >= GOAL_RATIO,
            peer=hand_rate,
            peer_name="iter_leads + json lines by hand",
            ratio=ratio,
            ratio_note="of by hand",
            runs=sizes["rounds"],
            note="median over rounds of by-hand time / operator time, each pass in a fresh process; "
            f"per round: {', '.join(f'{r:.2f}' for r in ratios)}",
        ),
        Row(
            figure="Export: client CPU per lead, OctanistLeadsToObjectStorageOperator",
            value=cpu["operator"],
            unit="us",
            goal="- (informational)",
            met=None,
            peer=cpu["hand"],
            peer_name="by hand",
            ratio=cpu["hand"] / cpu["operator"],
            ratio_note="of by hand",
            runs=sizes["rounds"],
            note="CPU time of the exporting process (fetching, parsing, encoding, writing) per lead; "
            "unlike wall time, other load on the machine barely moves it",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them); or be the server or one pass."""
    children = {
        "--serve": lambda args: serve(int(args[0])),
        "--pass": lambda args: one_pass(args[0], args[1], Path(args[2])),
    }
    return bench_main(__doc__ or "", measure, argv, children)


if __name__ == "__main__":
    sys.exit(main())
