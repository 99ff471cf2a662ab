"""
Serve a ``FakeOctanistServer`` for the benchmarks, in its own process, driven over stdin/stdout.

Started by :class:`_common.ServerProcess`. It prints one JSON line ``{"url", "lead_ids"}`` once
listening, then answers each JSON command line (``["arrivals"]``, ``["clear"]``, ``["connections"]``,
``["cpu"]``, ``["won", lead_id]``, ``["inject", kind, options]``, ``["quit"]``) with one JSON line.
``won`` sets a lead's status to ``won``, creating the lead if there is none with that id; ``inject``
queues one fault (``FakeOctanistServer.inject(kind, **options)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from _common import API_KEY

from airflow_provider_octanist.testing import FakeOctanistServer


def main() -> int:
    """Serve until ``quit`` or the end of stdin."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--seed-age", type=float, default=0.0, help="seed leads this many seconds old")
    args = parser.parse_args()
    with FakeOctanistServer(API_KEY, latency=args.latency) as server:
        # Seeded one by one "now", leads get distinct stamps a millisecond apart, so 10,000 of them
        # would be dated up to 10 s in the future; an age dates them all at one instant in the past.
        born = {}
        if args.seed_age > 0:
            born["createdAt"] = datetime.now(timezone.utc) - timedelta(seconds=args.seed_age)
        lead_ids = [lead["id"] for lead in server.add_leads(args.leads, name="Bench Lead", **born)]
        print(json.dumps({"url": server.url, "lead_ids": lead_ids}), flush=True)
        for line in sys.stdin:
            command, *args = json.loads(line)
            answer: Any = None
            if command == "arrivals":
                arrivals: dict[str, list[float]] = defaultdict(list)
                for request in server.requests:
                    arrivals[request.path].append(request.received_at)
                answer = arrivals
            elif command == "clear":
                server.clear_requests()
            elif command == "connections":
                answer = server.connections_opened
            elif command == "cpu":
                answer = time.process_time()
            elif command == "won":
                try:
                    server.set_status(args[0], "won", value=1)
                except KeyError:
                    server.add_lead(id=args[0], status="won")
                answer = time.monotonic()
            elif command == "inject":
                server.inject(args[0], **args[1])
            elif command == "quit":
                print(json.dumps(None), flush=True)
                break
            else:
                answer = {"error": f"unknown command {command!r}"}
            print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
