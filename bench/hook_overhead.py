"""
Hook overhead: ``OctanistHook.get_lead`` throughput against a bare ``requests.Session`` doing the same GET.

Both fetch the same lead from the same ``FakeOctanistServer`` (in its own process, so its threads
do not compete for this interpreter's lock) with the same headers, each over its own keep-alive
connection, and both turn the answer into the lead's dict (the bare side with
``response.json()["data"]``). Calls alternate one by one (hook, bare, bare, hook, ...), so a busy
neighbour slows both sides alike; every call is timed, and each round compares the sides' median
call times, which a call that happened to be preempted does not move. Throughput is one over the
median call time; the ratio is the median over rounds of hook throughput / bare throughput.

``python bench/hook_overhead.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from _common import API_KEY, OCTANIST_CONN, Row, ServerProcess, bench_main, connection_uri_json, median

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

GOAL_RATIO = 0.9
FULL = {"rounds": 9, "calls": 500}
SMOKE = {"rounds": 2, "calls": 20}


Timings = dict[str, list[float]]


def _round(hook: Callable[[], Any], bare: Callable[[], Any], calls: int) -> tuple[Timings, Timings]:
    """Wall and CPU seconds of each of ``calls`` calls per side, alternating which side goes first."""
    wall, cpu = time.perf_counter, time.process_time
    walls: Timings = {"hook": [], "bare": []}
    cpus: Timings = {"hook": [], "bare": []}
    for index in range(calls):
        order = (("hook", hook), ("bare", bare))
        for name, fetch in order if index % 2 else reversed(order):
            started, used = wall(), cpu()
            fetch()
            cpus[name].append(cpu() - used)
            walls[name].append(wall() - started)
    return walls, cpus


def measure(smoke: bool) -> list[Row]:
    """Interleaved blocks of hook and bare-session fetches; one row with the ratio."""
    import requests

    from airflow_provider_octanist._api import USER_AGENT
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    sizes = SMOKE if smoke else FULL
    with ServerProcess(leads=1) as server:
        lead_id = server.lead_ids[0]
        os.environ[f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}"] = connection_uri_json(server.url)
        hook = OctanistHook(OCTANIST_CONN)
        session = requests.Session()
        url = f"{server.url}/leads/{lead_id}"
        headers = {"X-API-KEY": API_KEY, "Accept": "application/json", "User-Agent": USER_AGENT}

        def bare() -> dict[str, Any]:
            response = session.get(url, headers=headers, timeout=(10, 30), allow_redirects=False)
            response.raise_for_status()
            lead: dict[str, Any] = response.json()["data"]
            return lead

        def through_hook() -> dict[str, Any]:
            return hook.get_lead(lead_id)

        if through_hook() != bare():
            raise RuntimeError("The hook and the bare session did not fetch the same lead.")
        _round(through_hook, bare, sizes["calls"])  # warm both connections and code paths
        walls: Timings = {"hook": [], "bare": []}
        cpus: Timings = {"hook": [], "bare": []}
        ratios: list[float] = []
        for _ in range(sizes["rounds"]):
            round_walls, round_cpus = _round(through_hook, bare, sizes["calls"])
            ratios.append(median(round_walls["bare"]) / median(round_walls["hook"]))
            for name in walls:
                walls[name] += round_walls[name]
                cpus[name] += round_cpus[name]
        hook.close()
        session.close()
    ratio = median(ratios)
    hook_rate, bare_rate = 1 / median(walls["hook"]), 1 / median(walls["bare"])
    cpu = {name: median(times) for name, times in cpus.items()}
    return [
        Row(
            figure="Hook: `get_lead` throughput, OctanistHook",
            value=hook_rate,
            unit="req/s",
            goal=f"ratio >= {GOAL_RATIO:g}",
            met=ratio >= GOAL_RATIO,
            peer=bare_rate,
            peer_name="bare requests.Session",
            ratio=ratio,
            ratio_note="of bare",
            runs=sizes["rounds"],
            note=(
                f"{sizes['rounds']} rounds of {sizes['calls']} calls per side, one by one in turn; median "
                f"call {1000 / hook_rate:.3f} ms (hook) vs {1000 / bare_rate:.3f} ms (bare)"
            ),
        ),
        Row(
            figure="Hook: client CPU per `get_lead` call",
            value=cpu["hook"] * 1000,
            unit="ms",
            goal="- (informational)",
            met=None,
            peer=cpu["bare"] * 1000,
            peer_name="bare requests.Session",
            ratio=cpu["bare"] / cpu["hook"],
            ratio_note="of bare",
            runs=sizes["rounds"],
            note="median CPU time of the same calls; the hook's own work per call (id validation, "
            "envelope and lead checks, retry bookkeeping) is the difference: "
            f"{(cpu['hook'] - cpu['bare']) * 1e6:.0f} us",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them)."""
    return bench_main(__doc__ or "", measure, argv)


if __name__ == "__main__":
    sys.exit(main())
