"""
Run real ``airflow dags test`` processes in a throw-away Airflow home, and read what they left behind.

Used by the tests that need Airflow itself (task states, retries, deferral, logs), not a mock of it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
MIGRATE_TIMEOUT = 240.0
RUN_TIMEOUT = 300.0


@dataclass
class TaskState:
    """One task instance of a run, as the metadata database has it."""

    state: str | None
    try_number: int
    max_tries: int


@dataclass
class DagsTestRun:
    """The outcome of one ``airflow dags test``."""

    dag_id: str
    returncode: int
    output: str
    seconds: float
    home: Path
    tasks: dict[str, TaskState] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value (JSON-decoded), or ``None`` when it pushed none."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ? ORDER BY timestamp DESC",
                (self.dag_id, task_id, key),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        value = row[0].decode() if isinstance(row[0], bytes) else row[0]
        return json.loads(value) if isinstance(value, str) else value

    def describe(self) -> str:
        """What to print when an assertion about the run fails: states and the end of the output."""
        states = {task: (t.state, t.try_number) for task, t in self.tasks.items()}
        tail = "\n".join(self.output.splitlines()[-60:])
        return (
            f"airflow dags test {self.dag_id} exited {self.returncode}; tasks {states}\n"
            f"--- output tail ---\n{tail}"
        )


class AirflowHome:
    """
    A throw-away ``AIRFLOW_HOME`` (sqlite) with its own DAG folder, migrated once.

    :param root: an empty directory to put it in.
    :param dag_files: DAG files copied into its DAG folder.
    """

    def __init__(self, root: Path, dag_files: list[Path]) -> None:
        self.home = root
        self.dags = root / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        for dag_file in dag_files:
            shutil.copy2(dag_file, self.dags / dag_file.name)
        result = subprocess.run(
            [str(AIRFLOW_BIN), "db", "migrate"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=MIGRATE_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an Airflow command here: nothing inherited points at another Airflow."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and k != "AIRFLOW_HOME"
        }
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            PATH=f"{AIRFLOW_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
            # Airflow 3.0 prints task errors with rich, wrapped at the terminal width (80 without
            # one); a wide virtual terminal keeps each message on one line for the tests to find.
            COLUMNS="200",
        )
        env.update(extra)
        return env

    def dags_test(
        self,
        dag_id: str,
        *,
        conf: dict[str, Any] | None = None,
        logical_date: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> DagsTestRun:
        """Run ``airflow dags test`` to the end (bounded by ``timeout``) and collect its outcome."""
        command = [str(AIRFLOW_BIN), "dags", "test", dag_id]
        if logical_date is not None:
            command.append(logical_date)
        if conf is not None:
            command += ["--conf", json.dumps(conf)]
        started = time.monotonic()
        try:
            result = subprocess.run(
                command,
                env=self.env(**(env or {})),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            output = (
                exc.output.decode(errors="replace") if isinstance(exc.output, bytes) else exc.output or ""
            )
            raise AssertionError(
                f"airflow dags test {dag_id} did not finish within {timeout:.0f} s:\n{output[-4000:]}"
            ) from None
        run = DagsTestRun(dag_id, result.returncode, result.stdout, time.monotonic() - started, self.home)
        with sqlite3.connect(self.home / "airflow.db") as db:
            rows = db.execute(
                "SELECT task_id, state, try_number, max_tries FROM task_instance WHERE dag_id = ?", (dag_id,)
            ).fetchall()
        run.tasks = {
            task_id: TaskState(state, try_number, max_tries) for task_id, state, try_number, max_tries in rows
        }
        return run

    def files_containing(self, needle: str) -> list[Path]:
        """Every file under the home (logs, database, config) whose bytes contain ``needle``."""
        raw = needle.encode()
        return [p for p in self.home.rglob("*") if p.is_file() and raw in p.read_bytes()]


class WhenSeen:
    """
    Act on the fake server once it has answered ``after_requests`` GETs for a lead (see ``_act``).

    Proves a sensor was really waiting: it saw the lead at least once before the change.
    Runs in a daemon thread and gives up after ``deadline`` seconds.
    """

    def __init__(
        self, server: Any, lead_id: str, *, after_requests: int = 2, deadline: float = 300.0
    ) -> None:
        self.server = server
        self.lead_id = lead_id
        self.after_requests = after_requests
        self.flipped = threading.Event()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + deadline
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"when-seen-{lead_id}")
        self._thread.start()

    def _act(self) -> None:
        raise NotImplementedError

    def _watch(self) -> None:
        path = f"/api/leads/{self.lead_id}"
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            if self.server.request_count("GET", path) >= self.after_requests:
                self._act()
                self.flipped.set()
                return
            self._stop.wait(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class FlipWhenSeen(WhenSeen):
    """Change a lead's status (``set_status(lead_id, status, **kw)``) once it has been seen."""

    def __init__(
        self,
        server: Any,
        lead_id: str,
        status: str,
        *,
        after_requests: int = 2,
        deadline: float = 300.0,
        **kw: Any,
    ) -> None:
        self.status = status
        self.kw = kw
        super().__init__(server, lead_id, after_requests=after_requests, deadline=deadline)

    def _act(self) -> None:
        self.server.set_status(self.lead_id, self.status, **self.kw)


class OutageWhenSeen(WhenSeen):
    """Make the server answer every request with ``503`` from the moment a lead has been seen."""

    def _act(self) -> None:
        self.server.inject("status", status=503, count=None)
