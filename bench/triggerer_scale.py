"""
Triggerer scale: many ``OctanistLeadStatusTrigger`` in one event loop, beside ``HttpSensorTrigger``.

One ``FakeOctanistServer`` (its own process, ``latency`` added to every answer) serves every side,
one after the other, alternating for several runs; every figure is the median over the runs.
Each run is a fresh worker process that imports both providers' triggers (the same heap for every
side, as in one triggerer serving both), starts its triggers spread evenly over the first poll
interval (as a triggerer's triggers arrive over time) and lets them poll for a few intervals:

- ours: ``OctanistLeadStatusTrigger`` on an open lead each, polling it on its own
  (``shared_feed=False``, what it falls back to; every poll is a 200 with the lead), its hook
  sending through aiohttp, as wherever aiohttp is installed. The shared change feed is measured
  by ``status_feed_scale.py``;
- ours on httpx: the same where aiohttp is not installed (the hook on httpx's own transport);
- peer: the HTTP provider's ``HttpSensorTrigger`` (``GET``, ``poke_interval``) through an ``http``
  connection to the same server with the API key as a header, each on a lead id that does not
  exist, because it polls until the answer is not a 404 (every poll is a 404 with an error body).
- floor: no trigger, no hook: coroutines that GET the same leads through the shared client our
  hooks use on httpx's transport, parse the JSON and sleep; what httpx itself costs per request.
- aiohttp floor: the same loop through one ``aiohttp.ClientSession`` whose connections stay open
  (32 at most, as ours): what a client that parses HTTP in C would cost, the HTTP provider's
  library without its new session per poll.

Figures, per side:

- memory per trigger: the worker's peak RSS while the triggers run minus its RSS before they were
  created (after a warm-up trigger loaded every module), divided by the number of triggers;
- CPU per poll: the worker's CPU time once every trigger runs (from one interval after the first
  started to the end), divided by the polls the server received meanwhile; the same over the whole
  run, start-up and clean-up included, is in the notes;
- poll-schedule lag: for every poll, when the request reached the server minus when it was due:
  a trigger's first poll is due when it starts, each later one when its ``asyncio.sleep`` between
  polls ends (recorded by wrapping ``asyncio.sleep`` in the worker). Server and worker share the
  monotonic clock of the machine.

``python bench/triggerer_scale.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import sys
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from _common import (
    OCTANIST_CONN,
    Row,
    ServerProcess,
    bench_main,
    cancel_all,
    first_event,
    http_sensor_trigger,
    median,
    percentile,
    ratio,
    rss_bytes,
    run_json,
    sample_until,
    trigger_worker,
    trigger_worker_command,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

FULL = {"triggers": 1000, "interval": 5.0, "polls": 2, "latency": 0.1, "runs": 3}
SMOKE = {"triggers": 50, "interval": 1.0, "polls": 2, "latency": 0.1, "runs": 1}
GOALS = {"lag_s": 1.0, "memory_kb": 50.0, "cpu_of_peer": 0.6}
SIDES = ("octanist", "octanist-httpx", "http", "httpx", "aiohttp")
"""Ours (on aiohttp), ours on httpx, the peer, and the two bare loops (on httpx, on aiohttp)."""
PEER = "HttpSensorTrigger"


# ------------------------------------------------------------------------------------------------
# Worker: one side, in its own process
# ------------------------------------------------------------------------------------------------


def _make_trigger(kind: str, path_id: str, interval: float) -> Any:
    if kind.startswith("octanist"):
        from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

        # Each trigger polling its own lead: the shared change feed has its own benchmark
        # (status_feed_scale.py); this one measures the per-lead polling it falls back to.
        return OctanistLeadStatusTrigger(
            path_id, octanist_conn_id=OCTANIST_CONN, poll_interval=interval, shared_feed=False
        )
    return http_sensor_trigger(path_id, interval)


class _HttpxFloor:
    """GET and parse through the shared client our async hooks use, on httpx's transport, and nothing else."""

    def __init__(self, settings: Any) -> None:
        from airflow_provider_octanist.hooks._transport.shared_client import new_client

        self._client = new_client(settings).client

    async def get_json(self, url: str, headers: dict[str, str]) -> Any:
        response = await self._client.get(url, headers=headers)
        response.raise_for_status()
        return response.json()

    async def aclose(self) -> None:
        await self._client.aclose()


class _AiohttpFloor:
    """The same through one aiohttp session that keeps its connections (32 at most, as ours)."""

    def __init__(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))

    async def get_json(self, url: str, headers: dict[str, str]) -> Any:
        async with self._session.get(url, headers=headers) as response:
            response.raise_for_status()
            return json.loads(await response.read())

    async def aclose(self) -> None:
        await self._session.close()


async def _side(kind: str, ids: list[str], warm_id: str, interval: float, polls: int) -> dict[str, Any]:
    """Run ``len(ids)`` triggers of ``kind`` for ``polls`` intervals; return what was measured."""
    # Warm-up: one trigger that fires at once loads every module and reads the connection.
    from airflow_provider_octanist.hooks._transport import shared_client

    # Where aiohttp is installed the hooks send through it; these sides measure httpx's transport.
    shared_client.PREFER_AIOHTTP = kind not in ("octanist-httpx", "httpx")
    if kind == "octanist" and not shared_client._aiohttp_transport_for(None):
        raise RuntimeError("ours is measured on aiohttp, which is not installed (pip install aiohttp)")
    bare: Any = None
    if kind.startswith("octanist"):
        from airflow_provider_octanist.triggers.octanist import OctanistLeadStatusTrigger

        warm: Any = OctanistLeadStatusTrigger(
            warm_id, octanist_conn_id=OCTANIST_CONN, target_statuses=("open",), poll_interval=interval
        )
        await asyncio.wait_for(first_event(warm), timeout=30)
    elif kind == "http":
        await asyncio.wait_for(first_event(http_sensor_trigger(warm_id, interval)), timeout=30)
    else:  # a floor: no trigger and no hook, just a client
        from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook

        settings = await OctanistAsyncHook(OCTANIST_CONN).get_settings()
        bare = _HttpxFloor(settings) if kind == "httpx" else _AiohttpFloor()
        await bare.get_json(settings.url(f"/leads/{warm_id}"), settings.headers())

    schedules: dict[str, list[float]] = defaultdict(list)
    current: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_trigger", default=None)
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, result: Any = None) -> Any:
        owner = current.get()
        if owner is not None and delay >= interval / 2:  # a wait between polls, not a library's nap
            schedules[owner].append(time.monotonic() + delay)
        return await real_sleep(delay, result)

    asyncio.sleep = recording_sleep  # type: ignore[assignment]
    fired: list[str] = []

    async def one(index: int, lead_id: str) -> None:
        await real_sleep(index * interval / len(ids))  # arrive spread over the first interval
        current.set(lead_id)
        schedules[lead_id].append(time.monotonic())
        if bare is not None:
            url, headers = settings.url(f"/leads/{lead_id}"), settings.headers()
            while True:
                await bare.get_json(url, headers)
                await asyncio.sleep(interval)
        trigger = _make_trigger(kind, lead_id, interval)
        async for _event in trigger.run():
            fired.append(lead_id)  # no trigger should fire: every lead stays open / missing
            return

    gc.collect()
    rss_before = rss_bytes()
    cpu_start = time.process_time()
    started = time.monotonic()
    tasks = [asyncio.ensure_future(one(index, lead_id)) for index, lead_id in enumerate(ids)]
    # Every trigger has started after one interval; from then on each polls every interval.
    end = started + interval * (polls + 1) - interval / 2
    steady_from = started + interval + 1.0
    cpu_steady_s, rss_peak = await sample_until(
        end, cpu_from=steady_from, rss_peak=rss_before, sleep=real_sleep
    )
    rss_peak = max(rss_peak, rss_bytes())
    errors = await cancel_all(tasks)
    if bare is not None:
        await bare.aclose()
    cpu_end = time.process_time()
    asyncio.sleep = real_sleep  # type: ignore[assignment]
    return {
        "rss_before": rss_before,
        "rss_peak": rss_peak,
        "cpu_s": cpu_end - cpu_start,
        "cpu_steady_s": cpu_steady_s,
        "steady_from": steady_from,
        "steady_to": end,
        "started": started,
        "schedules": schedules,
        "fired": fired,
        "errors": errors[:5],
    }


# ------------------------------------------------------------------------------------------------
# Orchestration
# ------------------------------------------------------------------------------------------------


def _lags(schedules: dict[str, list[float]], arrivals: dict[str, list[float]], prefix: str) -> list[float]:
    lags: list[float] = []
    for owner, due in schedules.items():
        arrived = sorted(arrivals.get(f"{prefix}{owner}", []))
        # The last sleep may have been cut short by the end of the run: more dues than arrivals.
        lags.extend(a - d for d, a in zip(due, arrived, strict=False))
    return lags


def _run_side(
    server: ServerProcess, kind: str, ids: list[str], warm: str, sizes: dict[str, Any]
) -> dict[str, Any]:
    interval, polls = float(sizes["interval"]), int(sizes["polls"])
    with trigger_worker_command(__file__, server.url, kind, ids, warm, interval, polls) as (args, env):
        server.clear()
        server_cpu, connections = server.cpu_seconds(), server.connections_opened()
        result: dict[str, Any] = run_json(args, timeout=300, env=env)
        result["server_cpu_s"] = server.cpu_seconds() - server_cpu
        result["connections"] = server.connections_opened() - connections
        arrivals = server.arrivals()
    prefix = "/api/leads/"
    mine = {path[len(prefix) :]: times for path, times in arrivals.items() if path[len(prefix) :] in set(ids)}
    result["polls"] = sum(len(times) for times in mine.values())
    result["steady_polls"] = sum(
        1 for times in mine.values() for t in times if result["steady_from"] <= t < result["steady_to"]
    )
    result["lags"] = _lags(result.pop("schedules"), arrivals, prefix)
    if result["fired"] or result["errors"]:
        raise RuntimeError(
            f"{kind} triggers misbehaved: fired={result['fired'][:5]} errors={result['errors']}"
        )
    return result


def _figures(side: dict[str, Any], count: int) -> dict[str, float]:
    return {
        "memory_kb": (side["rss_peak"] - side["rss_before"]) / count / 1024,
        "cpu_ms": side["cpu_steady_s"] / max(1, side["steady_polls"]) * 1000,
        "cpu_all_ms": side["cpu_s"] / max(1, side["polls"]) * 1000,
        "lag_p50": percentile(side["lags"], 50),
        "lag_p99": percentile(side["lags"], 99),
        "lag_max": max(side["lags"]),
        "polls": side["polls"],
        "server_cpu_ms": side["server_cpu_s"] / max(1, side["polls"]) * 1000,
        "connections": side["connections"],
    }


def _within_goal_and_below_peer(ours: float, peer: float, goal: float, unit: str) -> dict[str, Any]:
    """Row fields of a figure that must be at most ``goal`` and less than the peer's (ratio: peer / ours)."""
    return {
        "value": ours,
        "unit": unit,
        "goal": f"<= {goal:g} {unit}, less than peer",
        "met": ours <= goal and ours < peer,
        "peer": peer,
        "ratio": ratio(peer, ours),
        "ratio_note": "less",
    }


def _cpu_beside(figure: str, value: float, beside: tuple[float, str, str], runs: int, note: str) -> Row:
    """An informational CPU row: ``value`` ms beside another side's (its figure, name and ratio wording)."""
    other, other_name, ratio_note = beside
    return Row(
        figure=figure,
        value=value,
        unit="ms",
        goal="- (informational)",
        met=None,
        peer=other,
        peer_name=other_name,
        ratio=ratio(value, other),
        ratio_note=ratio_note,
        runs=runs,
        note=note,
    )


def measure(smoke: bool) -> list[Row]:
    """Both sides against one server, alternating; rows for memory, CPU and lag beside the HTTP trigger."""
    sizes = SMOKE if smoke else FULL
    count, runs = int(sizes["triggers"]), int(sizes["runs"])
    figures: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    with ServerProcess(leads=count + 1, latency=float(sizes["latency"])) as server:
        lead_ids, warm = server.lead_ids[:count], server.lead_ids[count]
        missing = [f"lead_missing_{index:05d}" for index in range(count)]
        for _ in range(runs):
            for side in SIDES:
                ids = missing if side == "http" else lead_ids
                figures[side].append(_figures(_run_side(server, side, ids, warm, sizes), count))

    def med(side: str, name: str) -> float:
        return median(run[name] for run in figures[side])

    o = {name: med("octanist", name) for name in figures["octanist"][0]}
    o_httpx = {name: med("octanist-httpx", name) for name in figures["octanist-httpx"][0]}
    h = {name: med("http", name) for name in figures["http"][0]}
    floor = {name: med("httpx", name) for name in figures["httpx"][0]}
    c_floor = {name: med("aiohttp", name) for name in figures["aiohttp"][0]}
    o["lag_max"] = max(run["lag_max"] for run in figures["octanist"])
    h["lag_max"] = max(run["lag_max"] for run in figures["http"])
    label = f"{count:,} triggers, {sizes['interval']:g} s interval, {sizes['latency'] * 1000:.0f} ms latency"
    common: dict[str, Any] = {"peer_name": PEER, "runs": runs}
    # The lag rows (p50, p99) share one goal, met when even the latest poll of all runs was in time.
    lag: dict[str, Any] = {
        "unit": "ms",
        "goal": f"every poll <= {GOALS['lag_s'] * 1000:.0f} ms late",
        "met": o["lag_max"] <= GOALS["lag_s"],
    }
    return [
        Row(
            figure=f"Triggerer ({label}): memory per trigger",
            **_within_goal_and_below_peer(o["memory_kb"], h["memory_kb"], GOALS["memory_kb"], "KB"),
            note="peak RSS while polling minus RSS before the triggers existed, divided by the triggers",
            **common,
        ),
        Row(
            figure="Triggerer: CPU per trigger per poll",
            value=o["cpu_ms"],
            unit="ms",
            goal=f"<= {GOALS['cpu_of_peer']:g}x peer",
            met=o["cpu_ms"] <= GOALS["cpu_of_peer"] * h["cpu_ms"],
            peer=h["cpu_ms"],
            ratio=ratio(o["cpu_ms"], h["cpu_ms"]),
            ratio_note="of peer",
            note=(
                f"once all triggers run; over the whole run, start-up and clean-up included: "
                f"{o['cpu_all_ms']:.2f} ms vs {h['cpu_all_ms']:.2f} ms "
                f"({o['polls'] / count:.1f} vs {h['polls'] / count:.1f} polls per trigger); the fake "
                f"server spent {o['server_cpu_ms']:.2f} ms vs {h['server_cpu_ms']:.2f} ms per request and "
                f"accepted {o['connections']:,.0f} vs {h['connections']:,.0f} connections"
            ),
            **common,
        ),
        _cpu_beside(
            "Triggerer: CPU per trigger per poll without aiohttp (the hook on httpx's transport)",
            o_httpx["cpu_ms"],
            (h["cpu_ms"], PEER, "of peer"),
            runs,
            f"where aiohttp is not installed; memory per trigger {o_httpx['memory_kb']:.1f} KB",
        ),
        _cpu_beside(
            "Triggerer: CPU per poll of a bare httpx loop on the same shared client (httpx's floor)",
            floor["cpu_ms"],
            (o_httpx["cpu_ms"], "OctanistLeadStatusTrigger on httpx", "of ours on httpx"),
            runs,
            "coroutines that only GET, parse and sleep, through the client our hooks share on "
            "httpx's transport: what httpx itself costs per request, so what no trigger on it beats",
        ),
        _cpu_beside(
            "Triggerer: CPU per poll of a bare aiohttp loop on one keep-alive session (its floor)",
            c_floor["cpu_ms"],
            (o["cpu_ms"], "OctanistLeadStatusTrigger", "of ours"),
            runs,
            "the same loop through one aiohttp session, no httpx above it: what aiohttp itself "
            "costs per request, so what no trigger on it beats",
        ),
        Row(
            figure="Triggerer: poll-schedule lag p50",
            value=o["lag_p50"] * 1000,
            peer=h["lag_p50"] * 1000,
            **lag,
            **common,
        ),
        Row(
            figure="Triggerer: poll-schedule lag p99",
            value=o["lag_p99"] * 1000,
            peer=h["lag_p99"] * 1000,
            **lag,
            note=f"latest poll of all runs: {o['lag_max'] * 1000:.0f} ms (ours), "
            f"{h['lag_max'] * 1000:.0f} ms ({PEER})",
            **common,
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them); or be one side's worker."""
    return bench_main(__doc__ or "", measure, argv, {"--worker": lambda args: trigger_worker(args, _side)})


if __name__ == "__main__":
    sys.exit(main())
