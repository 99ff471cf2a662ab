"""
A throw-away PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` on a temporary directory and a free
loopback port, stopped and deleted afterwards.

Needs the server binaries (Debian: ``apt-get install postgresql``; they live under
``/usr/lib/postgresql/<major>/bin``) and, for Airflow on Postgres, ``psycopg2`` (sync engine) and
``asyncpg`` (async engine) in the venv. :func:`missing` names what is absent. The tests that use it
run only when ``OCTANIST_REQUIRE_POSTGRES`` is set (``make e2e-postgres`` sets it), and then a
missing piece is a failure, never a skip.
PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from _airflow import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

REQUIRE_ENV = "OCTANIST_REQUIRE_POSTGRES"


def server_bin() -> Path | None:
    """The newest installed PostgreSQL server's ``bin`` directory, or ``None``."""
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def missing() -> str | None:
    """What this machine lacks to run Airflow on a throw-away Postgres, or ``None``."""
    if server_bin() is None:
        return "the PostgreSQL server binaries (apt-get install postgresql) are not installed"
    for module, package in (("psycopg2", "psycopg2-binary"), ("asyncpg", "asyncpg")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed in this venv (pip install {package})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no 'postgres' user to run the server as"
    return None


@contextlib.contextmanager
def throwaway_postgres(database: str = "airflow") -> Iterator[str]:
    """Run a fresh PostgreSQL server; yield the SQLAlchemy URL of an empty ``database`` on it."""
    bin_dir = server_bin()
    assert bin_dir is not None, missing()
    as_user: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="octanist-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        postgres = pwd.getpwnam("postgres")
        os.chown(workdir, postgres.pw_uid, postgres.pw_gid)
    data, port = workdir / "data", free_port()

    def run(*args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*as_user, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"

    started = False
    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        # Durability is irrelevant to a test database; sockets only on loopback and in the work dir.
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -k {workdir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(workdir / "server.log"),
            "-w",
            "start",
        )
        started = True
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(workdir, ignore_errors=True)
