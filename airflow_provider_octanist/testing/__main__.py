"""
Run a ``FakeOctanistServer`` from the command line until Ctrl+C or SIGTERM.

``python -m airflow_provider_octanist.testing --leads 5 --lead-id lead_demo --win-after 30``
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_octanist.testing.server import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

WON_VALUE = 1200
"""The value a lead gets when ``--win-after`` turns it won."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m airflow_provider_octanist.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_octanist.testing",
        description="Serve a fake Octanist API on loopback for demos and offline DAG tests.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key", help="the API key to accept (default: a random key, printed at start-up)"
    )
    parser.add_argument("--leads", type=int, default=0, metavar="N", help="seed N open leads")
    parser.add_argument("--lead-id", metavar="ID", help="seed one open lead with this id")
    parser.add_argument(
        "--win-after",
        type=float,
        metavar="SECONDS",
        help=f"turn the --lead-id lead won (value {WON_VALUE}) this many seconds after start-up",
    )
    parser.add_argument(
        "--bulk-updates", action="store_true", help="let PATCH by email/phone update several leads"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="SECONDS", help="delay added to every response"
    )
    parser.add_argument(
        "--url-file", type=Path, metavar="PATH", help="write the base URL to PATH once listening"
    )
    return parser


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` so that a reader polling for ``path`` never sees it half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """
    Start the server, seed it, print how to connect, and serve until SIGINT/SIGTERM; return 0.

    :param argv: command-line arguments (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.leads < 0:
        parser.error("--leads must be 0 or more")
    if args.win_after is not None and not args.lead_id:
        parser.error("--win-after needs --lead-id to say which lead turns won")
    if args.win_after is not None and args.win_after < 0:
        parser.error("--win-after must be 0 or more seconds")

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    api_key = args.api_key or f"fake-{secrets.token_hex(12)}"
    server = FakeOctanistServer(
        api_key, host=args.host, port=args.port, bulk_updates=args.bulk_updates, latency=args.latency
    )
    with server:
        server.add_leads(args.leads)
        print(f"Fake Octanist API listening on {server.url}", flush=True)
        if not args.api_key:
            print(f"API key: {api_key}", flush=True)
        print(f"export AIRFLOW_CONN_OCTANIST_DEFAULT='{server.connection_json}'", flush=True)
        if args.lead_id:
            server.add_lead(id=args.lead_id, name="Demo Lead", email="demo@example.com")
            if args.win_after is not None:
                server.schedule_status(args.lead_id, "won", after=args.win_after, value=WON_VALUE)
                print(f"Lead {args.lead_id} turns won in {args.win_after:g} s.", flush=True)
            else:
                print(f"Lead {args.lead_id} is open.", flush=True)
        if args.leads:
            print(f"Seeded {args.leads} open lead(s).", flush=True)
        if args.url_file is not None:
            _write_atomically(args.url_file, server.url + "\n")
        print("Serving until Ctrl+C.", flush=True)
        while not stop.wait(0.5):
            pass
    print("Fake Octanist API stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
