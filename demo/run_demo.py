"""
Watch an Octanist lead turn won in a real Airflow run, offline, in well under a minute.

What it does:

1. starts a ``FakeOctanistServer`` on loopback with one open lead;
2. makes a throw-away Airflow home (sqlite) whose DAG folder holds only the
   ``example_octanist_lead_won`` example, and runs ``airflow db migrate``;
3. runs ``airflow dags test example_octanist_lead_won`` with the connection given as
   ``AIRFLOW_CONN_OCTANIST_DEFAULT``; the sensor checks the lead once, sees it open and defers;
4. a few seconds after that first check the fake server marks the lead won, the trigger notices,
   the sensor returns the lead and the downstream task books its value;
5. prints the lead the DAG fetched (read from the sensor's XCom) and the moment it turned won.

Run it with ``make demo`` (which sets up ``.venv`` first), or with a Python environment that has
Airflow and this provider installed and its ``bin`` directory first on ``PATH``::

    python demo/run_demo.py [--keep]

Exit code 0 when the lead was seen won, 1 otherwise (with the reason and the end of Airflow's log).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "example_dags" / "example_octanist_lead_won.py"
DAG_ID = "example_octanist_lead_won"
SENSOR_TASK = "wait_for_lead_won"
LEAD_ID = "lead_7f3a9c2e41d8"
WON_VALUE = 1200
WIN_AFTER_FIRST_CHECK = 4.0
"""Seconds between the sensor's first look at the lead and the lead turning won."""
POKE_SECONDS = 2.0
MIGRATE_TIMEOUT = 240.0
RUN_TIMEOUT = 300.0
# Lines of Airflow's output worth showing while the run goes on: the provider's own messages.
INTERESTING = ("Lead ", "Deferring", "Booking won lead", "[DAG TEST] Trigger", "running trigger")
# Airflow 3 log lines: "<time> [<level>] <message> [<logger>] loc=<file:line> key=value ..."
STRUCTURED_LINE = re.compile(
    r"^\S+\s+\[\s*\w+\s*\]\s+(?P<message>.*?)\s+\[(?P<logger>[\w.]+)\](?:\s+\S+=\S*)*\s*$"
)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def isolated_env(home: Path, dags: Path, connection: str) -> dict[str, str]:
    """The environment of every Airflow command: nothing inherited may point at another Airflow."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and k != "AIRFLOW_HOME"
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE="True",
        AIRFLOW_CONN_OCTANIST_DEFAULT=connection,
        OCTANIST_EXAMPLE_POKE_SECONDS=str(POKE_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_logged(
    cmd: list[str], env: dict[str, str], log_path: Path, timeout: float, *, echo: bool = False
) -> int:
    """Run a command with its output in ``log_path`` (and the interesting lines echoed); return its code."""
    deadline = time.monotonic() + timeout
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(REPO)
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                if echo and any(marker in line for marker in INTERESTING):
                    match = STRUCTURED_LINE.match(line.strip())
                    if match is None:
                        say(f"airflow | {line.strip()}")
                    else:
                        say(f"airflow | {match.group('logger').rsplit('.', 1)[-1]}: {match.group('message')}")
            code = process.wait()
        finally:
            timer.cancel()
    if time.monotonic() > deadline:
        say(f"{' '.join(cmd[:3])} did not finish within {timeout:.0f} s and was stopped.")
        return 124
    return code


def tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines() if path.exists() else []
    return "\n".join(text[-lines:])


def sensor_xcom(db_path: Path) -> Any:
    """The sensor's return value (the lead), read from the run's XCom table; ``None`` if absent."""
    with sqlite3.connect(db_path) as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID, SENSOR_TASK),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    value = row[0]
    value = json.loads(value.decode() if isinstance(value, bytes) else value)
    # Some Airflow versions store the JSON document as a JSON string.
    return json.loads(value) if isinstance(value, str) else value


def task_states(db_path: Path) -> dict[str, str]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)).fetchall()
    return dict(rows)


def flip_when_seen(server: Any, done: threading.Event) -> None:
    """Turn the lead won a few seconds after the sensor first looked at it (bounded wait)."""
    path = f"/api/leads/{LEAD_ID}"
    deadline = time.monotonic() + MIGRATE_TIMEOUT + RUN_TIMEOUT
    while not done.is_set() and time.monotonic() < deadline:
        if server.request_count("GET", path) >= 1:
            say(f"Octanist: the sensor saw {LEAD_ID} open; it turns won in {WIN_AFTER_FIRST_CHECK:.0f} s.")
            server.schedule_status(LEAD_ID, "won", after=WIN_AFTER_FIRST_CHECK, value=WON_VALUE)
            return
        done.wait(0.1)


def start_server() -> Any:
    """A fake Octanist with one open lead and a fresh random API key."""
    from airflow_provider_octanist.testing import FakeOctanistServer

    server = FakeOctanistServer(api_key="demo-" + secrets.token_hex(16)).start()
    server.add_lead(
        id=LEAD_ID, name="Ada Lovelace", email="ada@example.com", source="api", utm_campaign="spring-launch"
    )
    say(f"Fake Octanist API at {server.url} with one open lead, {LEAD_ID}.")
    return server


def run_demo(airflow: str, home: Path, server: Any, done: threading.Event) -> int:
    """Migrate, run the example DAG and report; return the exit code."""
    dags = home / "dags"
    dags.mkdir()
    shutil.copy2(EXAMPLE, dags / EXAMPLE.name)
    conn = {"conn_type": "octanist", "host": server.url, "password": server.api_key}
    env = isolated_env(home, dags, json.dumps({**conn, "extra": {"retry_backoff": 0.2}}))

    say(f"Throw-away Airflow home {home}; `airflow db migrate` ...")
    code = run_logged([airflow, "db", "migrate"], env, home / "db-migrate.log", MIGRATE_TIMEOUT)
    if code != 0:
        say(f"`airflow db migrate` failed (exit {code}):\n{tail(home / 'db-migrate.log')}")
        return 1

    threading.Thread(target=flip_when_seen, args=(server, done), daemon=True).start()
    say(f"`airflow dags test {DAG_ID}`: the sensor is deferrable and polls every {POKE_SECONDS:.0f} s ...")
    run_log = home / "dags-test.log"
    command = [airflow, "dags", "test", DAG_ID, "--conf", json.dumps({"lead_id": LEAD_ID})]
    code = run_logged(command, env, run_log, RUN_TIMEOUT, echo=True)

    states = task_states(home / "airflow.db")
    lead = sensor_xcom(home / "airflow.db")
    if code != 0 or states.get(SENSOR_TASK) != "success" or not isinstance(lead, dict):
        say(f"The run did not succeed (exit {code}, task states {states}). End of its log ({run_log}):")
        print(tail(run_log), flush=True)
        return 1
    if lead.get("status") != "won":
        say(f"The sensor returned a lead that is not won: {lead!r}")
        return 1

    checks = server.request_count("GET", f"/api/leads/{LEAD_ID}")
    print(flush=True)
    say("The DAG fetched this lead (the sensor's XCom):")
    shown = {k: lead.get(k) for k in ("id", "name", "email", "status", "value", "source", "utm_campaign")}
    print(json.dumps(shown, indent=2), flush=True)
    say(f"It turned won at {lead.get('updatedAt')} (its updatedAt); the DAG saw it after {checks} checks.")
    say(f"Task states: {states}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the throw-away Airflow home for inspection")
    args = parser.parse_args(argv)

    airflow = shutil.which("airflow")
    if airflow is None:
        say("No `airflow` command on PATH. Run `make demo`, or put your virtualenv's bin first on PATH.")
        return 1
    try:
        import airflow_provider_octanist.testing  # noqa: F401 - fail early with a clear message
    except ImportError as exc:
        say(f"The provider is not installed in this Python ({sys.executable}): {exc}. Run `make demo`.")
        return 1

    started = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="octanist-demo-airflow-"))
    done = threading.Event()
    server = start_server()
    try:
        code = run_demo(airflow, home, server, done)
    finally:
        done.set()
        server.stop()
        if args.keep:
            say(f"Airflow home kept at {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    say(f"{'Done' if code == 0 else 'Failed'} in {time.monotonic() - started:.0f} s.")
    return code


if __name__ == "__main__":
    sys.exit(main())
