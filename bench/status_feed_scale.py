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
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from _common import (
    OCTANIST_CONN,
    Row,
    ServerProcess,
    bench_main,
    cancel_all,
    first_event,
    http_sensor_trigger,
    percentile,
    ratio,
    rss_bytes,
    sample_until,
    trigger_worker,
    trigger_worker_command,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

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


def _make_trigger(kind: str, lead_id: str, interval: float, **kwargs: Any) -> Any:
    if kind == "feed":
        from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

        return OctanistLeadStatusTrigger(
            lead_id, octanist_conn_id=OCTANIST_CONN, poll_interval=interval, **kwargs
        )
    return http_sensor_trigger(lead_id, interval)


async def _side(kind: str, ids: list[str], warm_id: str, interval: float, polls: int) -> dict[str, Any]:
    """Run ``len(ids)`` triggers of ``kind`` for ``polls`` intervals after they all started."""
    if kind == "feed":
        import airflow_provider_octanist.triggers._status.feed  # noqa: F401 - loaded on first join

        warm = _make_trigger(kind, warm_id, interval, target_statuses=("open",))
    else:
        warm = _make_trigger(kind, warm_id, interval)
    await asyncio.wait_for(first_event(warm), timeout=60)

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
            from airflow_provider_octanist.triggers._status.feed import feed_of

            feed = feed_of(OCTANIST_CONN, interval)
            return feed is not None and feed.size >= len(ids) - len(fired)
        return begun == len(ids)

    gc.collect()
    rss_before = rss_bytes()
    rss_peak = rss_before
    started = time.monotonic()
    print(json.dumps({"started": started}), flush=True)
    tasks = [asyncio.ensure_future(one(index, lead_id)) for index, lead_id in enumerate(ids)]
    # The steady part starts once every trigger waits (ours: has joined the feed after its first
    # read; the peer's: has started polling) and at least one interval after the first started.
    while not all_waiting() or time.monotonic() < started + interval:
        rss_peak = max(rss_peak, rss_bytes())
        await asyncio.sleep(0.25)
    steady_from = time.monotonic() + 1.0
    print(json.dumps({"steady_from": steady_from}), flush=True)
    # One interval more than the polls measured, so a lead flipped at the end is still detected.
    end = steady_from + interval * (polls + 1) + 3.0
    cpu_steady_s, rss_peak = await sample_until(end, cpu_from=steady_from, rss_peak=rss_peak)
    errors = await cancel_all(tasks)
    return {
        "rss_before": rss_before,
        "rss_peak": rss_peak,
        "cpu_steady_s": cpu_steady_s,
        "steady_from": steady_from,
        "steady_to": end,
        "started": started,
        "fired": fired,
        "errors": errors[:5],
    }


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------


def _run_side(
    server: ServerProcess, kind: str, ids: list[str], warm: str, size: dict[str, Any]
) -> dict[str, Any]:
    """Run one side in a worker process, which prints when its triggers all wait; flip a few leads."""
    interval, polls, flips = float(size["interval"]), int(size["polls"]), int(size["flips"])
    with trigger_worker_command(__file__, server.url, kind, ids, warm, interval, polls) as (args, env):
        server.clear()
        process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True, env=env)
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


def _share_of_peer(ours: float, peer: float, goal: float) -> dict[str, Any]:
    """Row fields of a figure whose goal is at most ``goal`` times the peer's (ratio: ours / peer)."""
    share = ratio(ours, peer)
    return {
        "value": ours,
        "goal": f"<= {goal:g}x peer",
        "met": share is not None and share <= goal,
        "peer": peer,
        "ratio": share,
        "ratio_note": "of peer",
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
                note=(
                    f"{feed['list_requests']:.1f} of them GET /leads (the feed's listing and its count "
                    "of leads, which notices deletions); the rest single-lead reads"
                ),
                **common,
            ),
            Row(
                figure="Status feed: CPU per waiting sensor per interval",
                unit="ms",
                **_share_of_peer(feed["cpu_ms"], http["cpu_ms"], GOALS["cpu_ratio"]),
                **common,
            ),
            Row(
                figure="Status feed: memory per trigger",
                unit="KB",
                **_share_of_peer(feed["memory_kb"], http["memory_kb"], GOALS["memory_ratio"]),
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
    """Measure and print the rows (``--json PATH`` also writes them); or be one side's worker."""
    return bench_main(__doc__ or "", measure, argv, {"--worker": lambda args: trigger_worker(args, _side)})


if __name__ == "__main__":
    sys.exit(main())
