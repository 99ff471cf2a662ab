"""
A throw-away Redis server as the Celery broker of the Postgres system tests, and what CeleryExecutor needs.

Needs Debian's ``redis-server`` (``apt-get install redis-server``; it is started here, never as a
service) and, in the venv, the Celery provider (``apache-airflow-providers-celery``, which brings
``celery``) with the ``redis`` client. :func:`missing` names what is absent. Like ``postgres.py``,
the tests that use it run only when ``OCTANIST_REQUIRE_POSTGRES`` is set, and then a missing piece
is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _airflow import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

STARTUP = 30.0
"""Seconds Redis may take to accept connections."""


def missing() -> str | None:
    """What this machine lacks to run CeleryExecutor with a Redis broker, or ``None``."""
    if shutil.which("redis-server") is None:
        return "redis-server (apt-get install redis-server) is not installed"
    for module, package in (
        ("airflow.providers.celery", "apache-airflow-providers-celery"),
        ("celery", "celery"),
        ("redis", "redis"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in this venv (pip install {package})"
    return None


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """Run a fresh Redis on loopback, in memory only; yield its URL (database 0)."""
    workdir = Path(tempfile.mkdtemp(prefix="octanist-redis-"))
    port = free_port()
    log = workdir / "redis.log"
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + STARTUP
        while not _accepts(port):
            if server.poll() is not None or time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log.exists() else "(no log)"
                raise AssertionError(f"redis-server did not start on port {port}:\n{text[-2000:]}")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


def celery_settings(broker_url: str, database_url: str) -> dict[str, str]:
    """The Airflow settings of CeleryExecutor with this broker and the metadata database as result backend."""
    # SQLAlchemy 2.1 would pick the psycopg 3 driver for a bare postgresql:// backend URL.
    backend = "db+" + database_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
    }
