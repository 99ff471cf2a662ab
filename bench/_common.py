"""
What every benchmark shares: result rows, statistics, the fake server in its own process, machine facts.

A benchmark script measures, builds :class:`Row` objects and hands them to :func:`emit`, which
prints them and, with ``--json PATH``, writes them where ``bench/run.py`` collects them; its
``main`` is :func:`bench_main`. The two triggerer benchmarks (``triggerer_scale.py``,
``status_feed_scale.py``) also share what runs one side of them in a worker process.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import (
        AsyncGenerator,
        Awaitable,
        Callable,
        Coroutine,
        Iterable,
        Iterator,
        Mapping,
        Sequence,
    )

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
API_KEY = "bench-api-key-not-a-secret"
OCTANIST_CONN = "octanist_bench"
"""The connection id of our connection to the fake server."""
HTTP_CONN = "http_bench"
"""The connection id of the HTTP provider's connection to the fake server (the peer's)."""


@dataclass
class Row:
    """One line of the results table: a median, its goal, and (where there is one) the peer's median."""

    figure: str
    value: float | None
    unit: str
    goal: str
    met: bool | None
    peer: float | None = None
    peer_name: str = ""
    ratio: float | None = None
    ratio_note: str = ""
    runs: int = 0
    text: str = ""
    """Shown instead of ``value`` for a result that is not a number (e.g. a list of modules)."""
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def median(values: Iterable[float]) -> float:
    """The median of ``values``; ``ValueError`` when there are none (a benchmark that measured nothing)."""
    data = list(values)
    if not data:
        raise ValueError("no samples were measured")
    return float(statistics.median(data))


def percentile(values: Iterable[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        raise ValueError("no samples were measured")
    rank = (len(data) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def bench_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line every benchmark script takes: ``--smoke`` and ``--json PATH``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs, not how fast")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result rows to PATH")
    args = parser.parse_args(argv)
    # Before anything imports Airflow here: a throw-away home, as for the child processes.
    os.environ.update({"AIRFLOW_HOME": _throwaway_airflow_home(), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    return args


def bench_main(
    description: str,
    measure: Callable[[bool], Sequence[Row]],
    argv: Sequence[str] | None = None,
    children: Mapping[str, Callable[[list[str]], int | None]] | None = None,
) -> int:
    """
    The ``main`` of a benchmark script: measure (``--smoke``: tiny sizes) and :func:`emit` the rows.

    :param children: what the script does when it runs as a child process it started itself: for a
        command line ``FLAG ARGS...`` (e.g. ``--worker kind ...``) whose ``FLAG`` is a key here,
        ``children[FLAG](ARGS)`` runs instead, and its result (``None``: 0) is the exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if children and argv[:1] and argv[0] in children:
        return children[argv[0]](argv[1:]) or 0
    args = bench_args(description, argv)
    emit(measure(args.smoke), args.json)
    return 0


def emit(rows: Sequence[Row], json_path: Path | None) -> None:
    """Print ``rows`` as a markdown table and write them to ``json_path`` for ``bench/run.py``."""
    print(markdown_table(rows))
    if any(row.note for row in rows):
        print()
        print(notes(rows))
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(row) for row in rows], indent=1), encoding="utf-8")


def rows_from_json(path: Path) -> list[Row]:
    """Read the rows a benchmark wrote with :func:`emit`."""
    return [Row(**item) for item in json.loads(path.read_text(encoding="utf-8"))]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "requests":
        return f"{value:,.0f}"
    if unit in ("", "x"):
        text = f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{text}{unit}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def markdown_table(rows: Sequence[Row]) -> str:
    """The results as a markdown table: figure, median, peer median, ratio, goal, met."""
    lines = [
        "| Figure | Median | Peer (median) | Ratio | Goal | Met? |",
        "|---|---:|---:|---:|---|:---:|",
    ]
    for row in rows:
        peer = f"{_number(row.peer, row.unit)} ({row.peer_name})" if row.peer is not None else "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        if row.ratio is not None and row.ratio_note:
            ratio = f"{ratio} {row.ratio_note}"
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        runs = f" ({row.runs} run{'' if row.runs == 1 else 's'})" if row.runs else ""
        shown = row.text if row.value is None and row.text else _number(row.value, row.unit)
        lines.append(f"| {row.figure}{runs} | {shown} | {peer} | {ratio} | {row.goal} | {met} |")
    return "\n".join(lines)


def notes(rows: Sequence[Row]) -> str:
    """The rows' notes as a markdown list (what a table cell has no room for)."""
    return "\n".join(f"- {row.figure}: {row.note}" for row in rows if row.note)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator`` for a Row's ratio; ``None`` (shown "-") when nothing was measured."""
    return numerator / denominator if denominator > 0 else None


def crashed_row(name: str, reason: str) -> Row:
    """The row that stands in for a benchmark that crashed: no figure, goal not met."""
    return Row(figure=f"{name}: CRASHED", value=None, unit="", goal=reason, met=False)


# ------------------------------------------------------------------------------------------------
# Machine facts
# ------------------------------------------------------------------------------------------------


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def machine_facts() -> dict[str, str]:
    """What the numbers were measured on: CPU, cores, memory, OS, Python and the library versions."""
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as handle:
            total_kb = int(handle.readline().split()[1])
            memory = f"{total_kb / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory or "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "apache-airflow": _version("apache-airflow"),
        "apache-airflow-providers-http": _version("apache-airflow-providers-http"),
        "httpx": _version("httpx"),
        "requests": _version("requests"),
        "aiohttp": _version("aiohttp"),
    }


# ------------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------------


_AIRFLOW_HOME_VAR = "OCTANIST_BENCH_AIRFLOW_HOME"


def _throwaway_airflow_home() -> str:
    """One temporary ``AIRFLOW_HOME`` for a whole benchmark run (children inherit it), removed at exit."""
    home = os.environ.get(_AIRFLOW_HOME_VAR)
    if not home:
        home = tempfile.mkdtemp(prefix="octanist-bench-airflow-")
        os.environ[_AIRFLOW_HOME_VAR] = home
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a benchmark child process: bytecode caching on, this repository importable."""
    env = dict(os.environ)
    # Deployed code runs from cached bytecode; compiling sources on every run would be measured instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    # Never read or write the developer's own Airflow (configuration, logs, connections).
    env["AIRFLOW_HOME"] = _throwaway_airflow_home()
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env.update(extra)
    return env


def run_json(args: Sequence[str], *, timeout: float, env: dict[str, str] | None = None) -> Any:
    """Run ``python args...`` and return the JSON document it prints last on stdout."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or child_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:] or done.stdout[-3000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith(("{", "["))]
    if not lines:
        raise RuntimeError(f"{' '.join(args)} printed no JSON:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(lines[-1])


class ServerProcess:
    """
    A ``FakeOctanistServer`` in a process of its own (``bench/_server.py``), so that its threads never
    compete for the interpreter lock with the code being measured.

    :param leads: open leads to seed; their ids are in ``lead_ids``.
    :param latency: seconds the server waits before every answer.
    :param seed_age: date the seeded leads this many seconds in the past (one instant), not "now".
    """

    def __init__(self, *, leads: int = 0, latency: float = 0.0, seed_age: float = 0.0) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "_server.py"),
                "--leads",
                str(leads),
                "--latency",
                str(latency),
                "--seed-age",
                str(seed_age),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        hello = self._answer()
        self.url: str = hello["url"]
        self.lead_ids: list[str] = hello["lead_ids"]
        self.pid = self._process.pid

    def _answer(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=10)
            raise RuntimeError(f"The fake Octanist server process ended (exit {code}); see its stderr above.")
        return json.loads(line)

    def command(self, name: str, *args: Any) -> Any:
        """Send one command to the server process and return its JSON answer."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps([name, *args]) + "\n")
        self._process.stdin.flush()
        return self._answer()

    def arrivals(self) -> dict[str, list[float]]:
        """``time.monotonic()`` of every request the server received so far, by path."""
        return dict(self.command("arrivals"))

    def clear(self) -> None:
        """Forget the recorded requests."""
        self.command("clear")

    def connections_opened(self) -> int:
        """TCP connections the server has accepted so far."""
        return int(self.command("connections"))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        return float(self.command("cpu"))

    def stop(self) -> None:
        if self._process.poll() is None:
            try:
                self.command("quit")
                self._process.wait(timeout=10)
            except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait(timeout=10)
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def connection_uri_json(url: str, *, conn_type: str = "octanist", **extra: Any) -> str:
    """A connection to the fake server as the JSON that ``AIRFLOW_CONN_*`` variables take."""
    document: dict[str, Any] = {"conn_type": conn_type, "host": url, "password": API_KEY}
    if extra:
        document["extra"] = extra
    return json.dumps(document)


def peak_rss_bytes() -> int:
    """The peak resident set size of this process so far (Linux ``VmHWM``)."""
    # VmHWM, not getrusage's ru_maxrss: that one survives exec, so it would report the parent's size.
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ------------------------------------------------------------------------------------------------
# Trigger workers: one side of a triggerer benchmark, many triggers in one event loop of a process
# ------------------------------------------------------------------------------------------------


def http_sensor_trigger(lead_id: str, interval: float) -> Any:
    """The peer: the HTTP provider's ``HttpSensorTrigger``, polling ``GET leads/{lead_id}`` until no 404."""
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return HttpSensorTrigger(
        endpoint=f"leads/{lead_id}", http_conn_id=HTTP_CONN, method="GET", poke_interval=interval
    )


async def first_event(trigger: Any) -> Any:
    """Run ``trigger`` until its first event (e.g. a warm-up trigger that fires at once) and close it."""
    events: AsyncGenerator[Any, None] = trigger.run()
    try:
        return await events.__anext__()
    finally:
        await events.aclose()


async def sample_until(
    end: float,
    *,
    cpu_from: float,
    rss_peak: int,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> tuple[float, int]:
    """
    Until ``end`` (``time.monotonic()``), sample this process's RSS every 0.25 s while the triggers run.

    Returns the CPU seconds this process used from ``cpu_from`` (monotonic) to ``end`` and the peak
    RSS seen (at least ``rss_peak``).

    :param sleep: how to wait between samples; a benchmark that wraps ``asyncio.sleep`` passes the real one.
    """
    cpu_start: float | None = None
    while (now := time.monotonic()) < end:
        if cpu_start is None and now >= cpu_from:
            cpu_start = time.process_time()
        rss_peak = max(rss_peak, rss_bytes())
        await sleep(min(0.25, end - now))
    cpu_end = time.process_time()
    return cpu_end - (cpu_start or cpu_end), rss_peak


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> list[str]:
    """Cancel ``tasks``, wait for them to end, and return ``repr`` of every exception but the cancellation."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [
        repr(r) for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]


@contextmanager
def trigger_worker_command(
    script: str, server_url: str, kind: str, ids: Sequence[str], warm: str, interval: float, polls: int
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """
    The command line (after ``python``) and environment of a worker running one side of ``script``.

    The worker (:func:`trigger_worker`) runs ``kind``'s triggers on the leads ``ids`` after one on
    ``warm``; the environment has our and the peer's connection to the fake server at ``server_url``.
    The file that passes the lead ids exists until the ``with`` block ends.
    """
    env = child_env(
        **{
            f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}": connection_uri_json(server_url),
            f"AIRFLOW_CONN_{HTTP_CONN.upper()}": connection_uri_json(
                server_url, conn_type="http", **{"X-API-KEY": API_KEY}
            ),
        }
    )
    with tempfile.TemporaryDirectory(prefix="octanist-bench-") as tmp:
        ids_file = Path(tmp) / "ids.json"
        ids_file.write_text(json.dumps({"ids": list(ids), "warm": warm}), encoding="utf-8")
        yield [script, "--worker", kind, str(ids_file), str(interval), str(polls)], env


def trigger_worker(
    argv: Sequence[str],
    side: Callable[[str, list[str], str, float, int], Coroutine[Any, Any, dict[str, Any]]],
) -> None:
    """
    Be a worker (``argv``: :func:`trigger_worker_command` after ``--worker``): run one side, print its result.

    ``side(kind, ids, warm_id, interval, polls)`` runs the triggers and returns what it measured,
    printed as one JSON line.

    Before the side runs, the worker imports both providers' triggers (one heap for every side, as in
    a triggerer serving both) and logs as a triggerer would (to a handler): into the void, or
    warnings to stderr when ``OCTANIST_BENCH_LOG`` is set.
    """
    kind, ids_file, interval, polls = argv[0], argv[1], float(argv[2]), int(argv[3])
    spec = json.loads(Path(ids_file).read_text(encoding="utf-8"))
    import airflow.providers.http.triggers.http  # noqa: F401

    import airflow_provider_octanist.triggers.octanist  # noqa: F401

    if os.environ.get("OCTANIST_BENCH_LOG"):
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    else:
        logging.basicConfig(level=logging.INFO, stream=open(os.devnull, "w"))  # noqa: SIM115
    result = asyncio.run(side(kind, spec["ids"], spec["warm"], interval, polls))
    print(json.dumps(result), flush=True)
