"""
Cost and detection latency of ``OctanistLeadEventTrigger`` watching 10,000 leads.

A ``FakeOctanistServer`` on loopback holds 10,000 leads. The trigger's own poll loop (``run()``,
as the triggerer drives it) watches for leads turning won. For each ``k`` (leads changed between
two polls) the benchmark changes ``k`` leads at a random moment of the poll interval, waits for
the event and records:

- requests of the poll that detected the change (goal: at most ``ceil(k/100) + 1``), and for
  ``k = 0`` the requests of every poll (goal: 1);
- detection latency, from the change to the event (goal: at most poll interval + 1 s);
- that every changed lead was reported exactly once.

``python bench/bench_event_trigger.py [--smoke] [--poll-interval S] [--rounds N]``

``--smoke`` is a tiny run for CI (500 leads, short interval, two rounds): it fails only when a
lead is missed or doubled or a poll costs more requests than the goal, never on timing. The full
run also fails when a latency misses its goal. Output: a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

LONG_AGO = "2026-01-01T00:00:00.000Z"


@dataclass
class Result:
    k: int
    polls: list[int] = field(default_factory=list)
    """Requests of each measured poll (the detecting poll, or every poll for k = 0)."""
    latencies: list[float] = field(default_factory=list)
    exact: bool = True
    """Every changed lead reported exactly once, and nothing else."""

    @property
    def request_goal(self) -> int:
        return math.ceil(self.k / 100) + 1 if self.k else 1


class PollClock:
    """Marks where the trigger's polls end: its loop sleeps between polls through ``lead_source.sleep``."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.sleeping = asyncio.Event()
        self.polled = asyncio.Event()
        self.requests_at_sleep: list[int] = []

    async def sleep(self, seconds: float) -> None:
        self.requests_at_sleep.append(self.server.request_count("GET", "/api/leads"))
        self.sleeping.set()
        self.polled.set()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.sleeping.clear()


async def measure(server: Any, k: int, rounds: int, poll_interval: float, leads: list[str]) -> Result:
    from airflow_provider_octanist.triggers._feed import lead_source
    from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger

    clock = PollClock(server)
    lead_source.sleep = clock.sleep  # type: ignore[assignment]
    result = Result(k)
    events = OctanistLeadEventTrigger(poll_interval=poll_interval).run()
    pending = asyncio.ensure_future(events.__anext__())
    try:
        await asyncio.wait_for(clock.sleeping.wait(), 60)  # started, first poll done
        for _ in range(rounds):
            if k == 0:
                before = len(clock.requests_at_sleep)
                while len(clock.requests_at_sleep) < before + 2:
                    clock.polled.clear()
                    await clock.polled.wait()
                result.polls.append(clock.requests_at_sleep[-1] - clock.requests_at_sleep[-2])
                assert not pending.done(), "an event without any change"
                continue
            await clock.sleeping.wait()
            await asyncio.sleep(random.uniform(0, poll_interval * 0.9))
            chosen, leads[:] = leads[:k], leads[k:]
            for lead_id in chosen:
                server.set_status(lead_id, "won", value=1)
            changed = time.monotonic()
            event = await asyncio.wait_for(pending, poll_interval * 5 + 30)
            result.latencies.append(time.monotonic() - changed)
            # Requests since the last poll ended: exactly the poll that found the change.
            result.polls.append(server.request_count("GET", "/api/leads") - clock.requests_at_sleep[-1])
            reported = [lead["id"] for lead in event.payload["leads"]]
            result.exact &= sorted(reported) == sorted(chosen)
            pending = asyncio.ensure_future(events.__anext__())
    finally:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    return result


def table(results: list[Result], poll_interval: float, n_leads: int) -> str:
    lines = [
        f"Watching {n_leads:,} leads, poll interval {poll_interval:g} s "
        f"(latency goal: at most {poll_interval + 1:g} s)",
        "",
        "| changed per poll (k) | polls measured | requests per poll (max) | goal ceil(k/100)+1 "
        "| detection latency p50 / max (s) | each lead once |",
        "|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in results:
        latency = "-"
        if r.latencies:
            latency = f"{statistics.median(r.latencies):.2f} / {max(r.latencies):.2f}"
        once = "yes" if r.exact else "NO"
        lines.append(f"| {r.k} | {len(r.polls)} | {max(r.polls)} | {r.request_goal} | {latency} | {once} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code (1 when a goal is missed, see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny CI run: never fails on timing")
    parser.add_argument("--poll-interval", type=float, default=None, help="seconds between polls")
    parser.add_argument("--rounds", type=int, default=None, help="measured polls per k")
    args = parser.parse_args(argv)
    n_leads = 500 if args.smoke else 10_000
    poll_interval = args.poll_interval or (0.3 if args.smoke else 2.0)
    rounds = args.rounds or (2 if args.smoke else 5)
    ks = (0, 1, 50) if args.smoke else (0, 1, 50, 250)

    # A throw-away Airflow home: importing the trigger imports Airflow.
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="octanist-bench-airflow-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_provider_octanist.testing import FakeOctanistServer

    with FakeOctanistServer(api_key="bench-api-key-not-a-secret") as server:
        os.environ["AIRFLOW_CONN_OCTANIST_DEFAULT"] = json.dumps(
            {"conn_type": "octanist", "host": server.url, "password": server.api_key}
        )
        leads = [lead["id"] for lead in server.add_leads(n_leads, createdAt=LONG_AGO)]
        random.shuffle(leads)
        results = [asyncio.run(measure(server, k, rounds, poll_interval, leads)) for k in ks]

    print(table(results, poll_interval, n_leads))
    failures = [f"k={r.k}: a lead was missed or doubled" for r in results if not r.exact]
    failures += [
        f"k={r.k}: {max(r.polls)} requests in one poll (goal {r.request_goal})"
        for r in results
        if max(r.polls) > r.request_goal
    ]
    if not args.smoke:
        failures += [
            f"k={r.k}: detection took {max(r.latencies):.2f} s (goal {poll_interval + 1:g} s)"
            for r in results
            if r.latencies and max(r.latencies) > poll_interval + 1
        ]
    for failure in failures:
        print(f"GOAL MISSED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
