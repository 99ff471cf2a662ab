"""
Shared change feed: N waiting ``OctanistLeadStatusTrigger`` in one event loop, beside ``HttpSensorTrigger``.

One ``FakeOctanistServer`` (its own process, ``latency`` added to every answer) serves both sides,
one after the other, at each size (1,000 and 10,000 waiting sensors). Each side runs in a fresh
worker process that imports both providers' triggers (one heap, as in a triggerer serving both),
starts its triggers spread over the first poll interval and lets them wait for a few intervals:

- ours: ``OctanistLeadStatusTrigger`` (default ``shared_feed=True``) on an open lead each; after
  its one ``GET /leads/{id}`` it waits on the feed shared by all of them;
- peer: the HTTP provider's ``HttpSensorTrigger`` (``GET``, ``poke_interval``) on a lead id that
  does not exist yet, through an ``http`` connection to the same server; it fires when the answer
  is no longer a 404.

Half-way through the steady part, a few leads are flipped: ours to ``won``, the peer's created
(already ``won``). Figures, per side:

- requests per interval: requests the server received once every trigger had started, per interval;
- CPU per waiting sensor per interval: the worker's CPU time in that window / sensors / intervals;
- memory per trigger: peak RSS while waiting minus RSS before the triggers existed (after a
  warm-up trigger loaded every module), divided by the triggers;
- detection latency: when a flipped trigger fired minus when the lead was flipped (server and
  worker share the machine's monotonic clock).

``python bench/status_feed_scale.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (
    API_KEY,
    Row,
    ServerProcess,
    bench_args,
    child_env,
    connection_uri_json,
    emit,
    percentile,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

OCTANIST_CONN = "octanist_bench"
HTTP_CONN = "http_bench"
FULL = [
    {"triggers": 1000, "interval": 10.0, "polls": 4, "flips": 5},
    {"triggers": 10000, "interval": 60.0, "polls": 1, "flips": 5},
]
SMOKE = [{"triggers": 50, "interval": 1.0, "polls": 3, "flips": 2}]
LATENCY = 0.05
GOALS = {"requests": 3.0, "cpu_ratio": 0.2, "memory_ratio": 0.5, "detection_slack_s": 2.0}
SIDES = ("feed", "http")
PEER = "HttpSensorTrigger"


# ------------------------------------------------------------------------------------------------
# Worker: one side, in its own process
# ------------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _make_trigger(kind: str, lead_id: str, interval: float, **kwargs: Any) -> Any:
    if kind == "feed":
        from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

        return OctanistLeadStatusTrigger(
            lead_id, octanist_conn_id=OCTANIST_CONN, poll_interval=interval, **kwargs
        )
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return HttpSensorTrigger(
        endpoint=f"leads/{lead_id}", http_conn_id=HTTP_CONN, method="GET", poke_interval=interval
    )


async def _first_event(trigger: Any) -> Any:
    events: AsyncIterator[Any] = trigger.run()
    try:
        return await events.__anext__()
    finally:
        await events.aclose()


async def _side(kind: str, ids: list[str], warm_id: str, interval: float, polls: int) -> dict[str, Any]:
    """Run ``len(ids)`` triggers of ``kind`` for ``polls`` intervals after they all started."""
    if kind == "feed":
        import airflow_provider_octanist.triggers._feed.status_feed  # noqa: F401 - loaded on first join

        warm = _make_trigger(kind, warm_id, interval, target_statuses=("open",))
    else:
        warm = _make_trigger(kind, warm_id, interval)
    await asyncio.wait_for(_first_event(warm), timeout=60)

    fired: dict[str, float] = {}
    begun = 0

    async def one(index: int, lead_id: str) -> None:
        nonlocal begun
        await asyncio.sleep(index * interval / len(ids))  # arrive spread over the first interval
        trigger = _make_trigger(kind, lead_id, interval)
        begun += 1
        async for event in trigger.run():
            fired[lead_id] = time.monotonic()
            payload = event.payload
            if kind == "feed" and payload.get("status") != "success":
                raise RuntimeError(f"unexpected event {payload}")
            return

    def all_waiting() -> bool:
        if kind == "feed":
            from airflow_provider_octanist.triggers._feed.status_feed import feed_of

            feed = feed_of(OCTANIST_CONN, interval)
            return feed is not None and feed.size >= len(ids) - len(fired)
        return begun == len(ids)

    gc.collect()
    rss_before = _rss_bytes()
    rss_peak = rss_before
    started = time.monotonic()
    print(json.dumps({"started": started}), flush=True)
    tasks = [asyncio.ensure_future(one(index, lead_id)) for index, lead_id in enumerate(ids)]
    # The steady part starts once every trigger waits (ours: has joined the feed after its first
    # read; the peer's: has started polling) and at least one interval after the first started.
    while not all_waiting() or time.monotonic() < started + interval:
        rss_peak = max(rss_peak, _rss_bytes())
        await asyncio.sleep(0.25)
    steady_from = time.monotonic() + 1.0
    print(json.dumps({"steady_from": steady_from}), flush=True)
    # One interval more than the polls measured, so a lead flipped at the end is still detected.
    end = steady_from + interval * (polls + 1) + 3.0
    cpu_steady_start: float | None = None
    while (now := time.monotonic()) < end:
        if cpu_steady_start is None and now >= steady_from:
            cpu_steady_start = time.process_time()
        rss_peak = max(rss_peak, _rss_bytes())
        await asyncio.sleep(min(0.25, end - now))
    cpu_steady_end = time.process_time()
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [
        repr(r) for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    return {
        "rss_before": rss_before,
        "rss_peak": rss_peak,
        "cpu_steady_s": cpu_steady_end - (cpu_steady_start or cpu_steady_end),
        "steady_from": steady_from,
        "steady_to": end,
        "started": started,
        "fired": fired,
        "errors": errors[:5],
    }


def worker(kind: str, ids_file: str, interval: float, polls: int) -> None:
    """Run one side and print its measurements as JSON (a first line says when the triggers start)."""
    spec = json.loads(Path(ids_file).read_text(encoding="utf-8"))
    import airflow.providers.http.triggers.http  # noqa: F401

    import airflow_provider_octanist.triggers.octanist  # noqa: F401

    # Logged as a triggerer would (to a handler), into the void unless OCTANIST_BENCH_LOG is set.
    if os.environ.get("OCTANIST_BENCH_LOG"):
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    else:
        logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    result = asyncio.run(_side(kind, spec["ids"], spec["warm"], interval, polls))
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------


def _run_side(
    server: ServerProcess, kind: str, ids: list[str], warm: str, size: dict[str, Any]
) -> dict[str, Any]:
    interval, polls, flips = float(size["interval"]), int(size["polls"]), int(size["flips"])
    with tempfile.TemporaryDirectory(prefix="octanist-bench-") as tmp:
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps({"ids": ids, "warm": warm}), encoding="utf-8")
        env = child_env(
            **{
                f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}": connection_uri_json(server.url),
                f"AIRFLOW_CONN_{HTTP_CONN.upper()}": connection_uri_json(
                    server.url, conn_type="http", **{"X-API-KEY": API_KEY}
                ),
            }
        )
        server.clear()
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, str(ids_file), str(interval), str(polls)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        steady_from = None
        for line in process.stdout:
            if line.startswith("{") and "steady_from" in line:
                steady_from = json.loads(line)["steady_from"]
                break
        if steady_from is None:
            raise RuntimeError(f"{kind} worker ended before its triggers waited (exit {process.wait()})")
        # Flip a few leads half-way through the steady part, spread over half an interval.
        flip_at = steady_from + polls * interval / 2
        step = len(ids) // (flips + 1)
        chosen = [ids[step * (i + 1)] for i in range(flips)]
        flipped: dict[str, float] = {}
        for index, lead_id in enumerate(chosen):
            due = flip_at + index * interval / 2 / flips
            time.sleep(max(0.0, due - time.monotonic()))
            flipped[lead_id] = time.monotonic()
            server.command("won", lead_id)
        out, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"{kind} worker exited {process.returncode}")
        result: dict[str, Any] = json.loads([x for x in out.splitlines() if x.startswith("{")][-1])
        arrivals = server.arrivals()
    if result["errors"] and kind == "feed":
        raise RuntimeError(f"{kind} triggers failed: {result['errors']}")
    unexpected = sorted(set(result["fired"]) - set(chosen))
    missed = sorted(set(chosen) - set(result["fired"]))
    if unexpected or (missed and kind == "feed"):
        raise RuntimeError(f"{kind}: fired for unflipped leads {unexpected[:5]}, missed {missed}")
    window = result["steady_to"] - result["steady_from"]
    steady = sum(
        1 for times in arrivals.values() for t in times if result["steady_from"] <= t < result["steady_to"]
    )
    listed = sum(
        1 for t in arrivals.get("/api/leads", []) if result["steady_from"] <= t < result["steady_to"]
    )
    intervals = window / interval
    return {
        "requests": steady / intervals,
        "list_requests": listed / intervals,
        "cpu_ms": result["cpu_steady_s"] * 1000 / len(ids) / intervals,
        "memory_kb": (result["rss_peak"] - result["rss_before"]) / len(ids) / 1024,
        "latencies": [result["fired"][lead] - flipped[lead] for lead in chosen if lead in result["fired"]],
        "missed": len(missed),
        "errors": result["errors"],
    }


def measure(smoke: bool) -> list[Row]:
    """Both sides at each size against one server; rows side by side with the HTTP trigger."""
    rows: list[Row] = []
    for size in SMOKE if smoke else FULL:
        count, interval = int(size["triggers"]), float(size["interval"])
        # Leads seeded an hour ago: waiting sensors watch leads that changed before they started.
        with ServerProcess(leads=count + 1, latency=LATENCY, seed_age=3600) as server:
            lead_ids, warm = server.lead_ids[:count], server.lead_ids[count]
            missing = [f"lead_missing_{index:05d}" for index in range(count)]
            feed = _run_side(server, "feed", lead_ids, warm, size)
            print(f"feed, {count} sensors: {json.dumps(feed)}", file=sys.stderr, flush=True)
            http = _run_side(server, "http", missing, warm, size)
            print(f"http, {count} sensors: {json.dumps(http)}", file=sys.stderr, flush=True)
        label = f"{count:,} waiting sensors, {interval:g} s interval"
        common: dict[str, Any] = {"peer_name": PEER, "runs": 1}
        cpu_ratio = feed["cpu_ms"] / http["cpu_ms"] if http["cpu_ms"] > 0 else None
        memory_ratio = feed["memory_kb"] / http["memory_kb"] if http["memory_kb"] > 0 else None
        worst = max(feed["latencies"])
        peer_latency = percentile(http["latencies"], 50) if http["latencies"] else None
        peer_worst = (f"{max(http['latencies']):.2f} s" if http["latencies"] else "none detected") + (
            f", {http['missed']} not detected before the end" if http["missed"] else ""
        )
        detection_goal = interval + GOALS["detection_slack_s"]
        rows += [
            Row(
                figure=f"Status feed ({label}): requests per interval",
                value=feed["requests"],
                unit="requests",
                goal=f"<= {GOALS['requests']:g} at 1,000 sensors",
                met=feed["requests"] <= GOALS["requests"] if count <= 1000 else None,
                peer=http["requests"],
                note=f"{feed['list_requests']:.1f} of them GET /leads (the feed); the rest single-lead reads",
                **common,
            ),
            Row(
                figure="Status feed: CPU per waiting sensor per interval",
                value=feed["cpu_ms"],
                unit="ms",
                goal=f"<= {GOALS['cpu_ratio']:g}x peer",
                met=cpu_ratio is not None and cpu_ratio <= GOALS["cpu_ratio"],
                peer=http["cpu_ms"],
                ratio=cpu_ratio,
                ratio_note="of peer",
                **common,
            ),
            Row(
                figure="Status feed: memory per trigger",
                value=feed["memory_kb"],
                unit="KB",
                goal=f"<= {GOALS['memory_ratio']:g}x peer",
                met=memory_ratio is not None and memory_ratio <= GOALS["memory_ratio"],
                peer=http["memory_kb"],
                ratio=memory_ratio,
                ratio_note="of peer",
                **common,
            ),
            Row(
                figure=f"Status feed: detection latency p50 of {len(feed['latencies'])} leads won half-way",
                value=percentile(feed["latencies"], 50),
                unit="s",
                goal=f"<= poll interval + {GOALS['detection_slack_s']:g} s = {detection_goal:g} s",
                met=worst <= detection_goal,
                peer=peer_latency,
                note=f"slowest: {worst:.2f} s (ours), {peer_worst} ({PEER})",
                **common,
            ),
        ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2], float(argv[3]), int(argv[4]))
        return 0
    args = bench_args(__doc__ or "", argv)
    emit(measure(args.smoke), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
