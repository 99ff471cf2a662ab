"""
The harness of the event-driven system tests: real Airflow components as separate processes against
fake Octanist servers, and bounded waits that say what they waited for when they time out.

``test_event_driven_e2e.py`` (sqlite, one triggerer) and ``test_event_driven_postgres.py`` (Postgres,
two triggerers) both build on it; ``postgres.py`` runs the throw-away Postgres server itself. The
DAGs under test write one JSON marker per booking into a bookings folder; :func:`read_bookings` reads
them back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from airflow_provider_octanist.testing import FakeOctanistServer

WAIT_STEP = 0.25
"""Seconds between two checks of a condition in :meth:`Stack.wait_for`."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class AirflowProcesses:
    """Airflow components as separate process trees of one throw-away installation."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.env = env
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}

    def run(self, *args: str, timeout: float) -> None:
        """Run one ``airflow`` command to its end; a non-zero exit fails with the tail of its output."""
        log = self.home / f"{args[0]}-{args[1]}.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [self.airflow, *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{tail(log)}"

    def start(self, name: str, *args: str) -> None:
        log = self.home / f"{name}.log"
        self.logs[name] = log
        out = log.open("ab")
        self.procs[name] = subprocess.Popen(
            [self.airflow, *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: a kill reaches its children too
        )
        out.close()

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the whole process tree of component ``name`` and wait for it to go."""
        import psutil

        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for sender in (lambda: os.killpg(proc.pid, sig), *(lambda p=p: p.send_signal(sig) for p in tree)):
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                sender()
        _, alive = psutil.wait_procs(tree, timeout=20)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        proc.wait(timeout=10)

    @contextlib.contextmanager
    def suspended(self, name: str) -> Iterator[None]:
        """Component ``name``'s process group stopped (SIGSTOP) for the block, continued after it."""
        pid = self.procs[name].pid
        os.killpg(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.poll() is None, (
                f"airflow {name} exited with {proc.returncode}:\n{tail(self.logs[name])}"
            )

    def tails(self) -> str:
        return "\n".join(f"----- {name} -----\n{tail(log)}" for name, log in self.logs.items())


def airflow_home(root: Path, dag_file: Path) -> tuple[Path, Path, Path]:
    """``root/airflow`` with ``dag_file`` in its DAGs folder, and an empty ``root/bookings``.

    Returns (Airflow home, DAGs folder, bookings folder).
    """
    home, bookings = root / "airflow", root / "bookings"
    dags = home / "dags"
    dags.mkdir(parents=True)
    bookings.mkdir()
    shutil.copy(dag_file, dags / dag_file.name)
    return home, dags, bookings


def airflow_env(
    home: Path, dags: Path, database_url: str, api_port: int, settings: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every component: this process's without its ``AIRFLOW*`` variables, a
    LocalExecutor installation on ``database_url`` serving its API on ``api_port``, then ``settings``."""
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(32).hex(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            **settings,
        }
    )
    return env


@contextlib.contextmanager
def running_airflow(
    home: Path,
    dags: Path,
    database_url: str,
    settings: Mapping[str, str],
    triggerers: tuple[str, ...],
    celery_workers: tuple[str, ...] = (),
) -> Iterator[AirflowProcesses]:
    """Migrate the metadata database, then run an API server (on a free port), a scheduler, a DAG
    processor, one triggerer per name in ``triggerers`` and one Celery worker per name in
    ``celery_workers`` (for ``settings`` that choose CeleryExecutor) with :func:`airflow_env`; every
    component is stopped (SIGTERM, whole tree) afterwards."""
    airflow = AirflowProcesses(home, airflow_env(home, dags, database_url, free_port(), settings))
    try:
        airflow.run("db", "migrate", timeout=180)
        airflow.start("api-server", "api-server")
        airflow.start("scheduler", "scheduler", "--skip-serve-logs")
        airflow.start("dag-processor", "dag-processor")
        for name in triggerers:
            airflow.start(name, "triggerer", "--skip-serve-logs")
        for name in celery_workers:
            airflow.start(
                name,
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--skip-serve-logs",
                "--without-mingle",
                "--without-gossip",
            )
        yield airflow
    finally:
        airflow.stop_all()


def octanist_connection(server: FakeOctanistServer) -> str:
    """The ``AIRFLOW_CONN_...`` JSON of a connection to ``server`` (short retry back-off)."""
    return json.dumps(
        {
            "conn_type": "octanist",
            "host": server.url,
            "password": server.api_key,
            "extra": {"retry_backoff": 0.2},
        }
    )


def api_server_healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def is_poll(request: Any) -> bool:
    """
    A list request of a poll: not the one-off start of a watcher (reading the server's clock asks
    for one lead; seeding its memory filters by status).
    """
    return bool(
        request.method == "GET"
        and request.path == "/api/leads"
        and "status" not in request.query
        and request.query.get("limit") != ["1"]
    )


def polls_since(server: FakeOctanistServer, moment: float) -> int:
    """The watcher's list requests ``server`` received since ``moment`` (``time.monotonic()``)."""
    return sum(1 for r in server.requests if is_poll(r) and r.received_at >= moment)


def read_bookings(folder: Path, dag_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Lead id -> every booking (marker file) in ``folder``, of DAG ``dag_id`` only if one is given."""
    result: dict[str, list[dict[str, Any]]] = {}
    for path in folder.glob(f"{dag_id}.*.json" if dag_id else "*.json"):
        booking = json.loads(path.read_text())
        if dag_id is None or booking["dag_id"] == dag_id:
            result.setdefault(booking["lead_id"], []).append(booking)
    return result


def event_leads(extra: str | dict[str, Any]) -> list[str]:
    """The lead ids in the ``extra`` of an asset event the watcher emitted (JSON text or decoded)."""
    payload = (extra if isinstance(extra, dict) else json.loads(extra)).get("payload") or {}
    return [lead["id"] for lead in payload.get("leads", [])]


class MetadataDB:
    """Read-only queries against an Airflow metadata database; a table not created yet reads empty."""

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def import_errors(self) -> list[str]:
        return [row[0] for row in self.rows("SELECT stacktrace FROM import_error")]


class SqliteDB(MetadataDB):
    """The sqlite metadata database at ``path`` (``?`` placeholders); a locked database reads empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30) as db:
            try:
                return db.execute(sql, params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc) or "locked" in str(exc):
                    return []
                raise


class PostgresDB(MetadataDB):
    """The Postgres metadata database of SQLAlchemy URL ``url`` (``%s`` placeholders)."""

    def __init__(self, url: str) -> None:
        self.dsn = url.replace("postgresql+psycopg2://", "postgresql://")

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        try:
            with psycopg2.connect(self.dsn, connect_timeout=10) as db, db.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        except psycopg2.errors.UndefinedTable:
            return []


class Stack:
    """Running Airflow components, their metadata database and the folder the bookings land in."""

    dags_label = "the DAGs under test"
    """What the DAGs folder holds, for the message when a file in it does not import."""

    def __init__(self, airflow: AirflowProcesses, db: MetadataDB, bookings: Path) -> None:
        self.airflow = airflow
        self.db = db
        self.bookings = bookings

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        """Check ``condition`` until it returns something true, and return that; fail at once when a
        component has exited or a DAG does not import, and after ``timeout`` seconds with
        :meth:`observed` and the tail of every component's log."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            self.airflow.alive()
            errors = self.db.import_errors()
            assert not errors, f"Import errors in {self.dags_label}:\n" + "\n".join(errors)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Timed out after {timeout:.0f} s waiting for {what}.\n"
                    f"{self.observed()}\n{self.airflow.tails()}"
                )
            time.sleep(WAIT_STEP)

    def wait_for_api_server(self, timeout: float) -> None:
        """Wait until the API server answers its health check."""
        port = self.airflow.env["AIRFLOW__API__PORT"]
        self.wait_for(lambda: api_server_healthy(port), timeout, "the API server")

    def observed(self) -> str:
        """What a timed-out wait reports besides the logs; the tests add what they watch."""
        return f"bookings: {sorted(p.name for p in self.bookings.glob('*.json'))}"


def report(
    record_property: Callable[[str, object], None], scenario: str | None, values: Mapping[str, Any]
) -> None:
    """Print the measurements (``-s``) and record each as a test property, ``<scenario>.<name>``
    where a scenario is named."""
    print(f"\nmeasured{f' {scenario}' if scenario else ''}:", json.dumps(values, indent=2))
    for name, value in values.items():
        record_property(f"{scenario}.{name}" if scenario else name, json.dumps(value))
