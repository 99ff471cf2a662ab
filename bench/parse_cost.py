"""
DAG-parse cost: what importing the operator and sensor modules adds to ``import airflow.sdk``.

Every sample is a fresh interpreter that imports ``airflow.sdk`` first (what any DAG file does)
and then times only the provider's imports, so the cost of ``airflow.sdk`` itself is subtracted
sample by sample instead of as the difference of two noisy ~3 s totals. Both wall-clock
(``perf_counter``) and CPU time (``process_time``) are recorded, medians of seven samples
(``--smoke``: one) after a first run per subject that writes the bytecode caches; the goal is 4 ms
added, both ways. CPU time is what the import costs the DAG processor whatever else the machine
is doing; wall time adds the waits, and each sample counts them (``getrusage``: preemptions,
blocking waits, major page faults), so the wall row's note says what the difference was
(``docs/performance.md``, "What a DAG file's import costs"). The HTTP provider's
``HttpOperator``/``HttpSensor`` are measured the same way, samples interleaved. ``sys.modules``
shows what each import pulls in beyond ``airflow.sdk``.

``python bench/parse_cost.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from _common import Row, bench_main, child_env, median, ratio, run_json

if TYPE_CHECKING:
    from collections.abc import Sequence

SUBJECTS: dict[str, tuple[str, ...]] = {
    "octanist": (
        "airflow_provider_octanist.operators.octanist",
        "airflow_provider_octanist.sensors.octanist",
    ),
    "http": ("airflow.providers.http.operators.http", "airflow.providers.http.sensors.http"),
}
# Imported on top by DAG files that schedule on an asset watched by the event trigger.
TRIGGERS: dict[str, str] = {
    "octanist": "airflow_provider_octanist.triggers.octanist",
    "http": "airflow.providers.http.triggers.http",
}
# Not needed to *define* a task, so our operator and sensor modules must not import them.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "requests": ("requests", "urllib3"),
    "httpx": ("httpx", "httpcore"),
    "aiohttp": ("aiohttp",),
    "pendulum parsing": ("pendulum.parsing", "pendulum.parser"),
    "the testing server": ("airflow_provider_octanist.testing",),
    "the hooks": ("airflow_provider_octanist.hooks",),
    "the triggers": ("airflow_provider_octanist.triggers",),
}
# Two spellings of one event-driven watcher, as a DAG file declares it: import, build, serialize.
WATCHERS: dict[str, str] = {
    "direct": (
        "from airflow_provider_octanist.triggers.octanist import OctanistLeadEventTrigger as T\n"
        "T(statuses=['won'], poll_interval=60).serialize()"
    ),
    "message_queue": (
        "from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger as T\n"
        "T(scheme='octanist', statuses=['won'], poll_interval=60).serialize()"
    ),
}
GOAL_MS = 4.0
FULL_SAMPLES = 7
SMOKE_SAMPLES = 1


def worker(subject: str) -> None:
    """In a fresh interpreter: import airflow.sdk, then time ``subject``'s modules; print JSON."""
    import importlib
    import json
    import time

    import airflow.sdk  # noqa: F401 - the baseline every DAG file pays

    before = set(sys.modules)
    start = _usage()
    wall, cpu = time.perf_counter(), time.process_time()
    for module in SUBJECTS[subject]:
        importlib.import_module(module)
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    waited = {key: value - start[key] for key, value in _usage().items()}
    added = sorted(set(sys.modules) - before)
    triggers_cpu = time.process_time()
    importlib.import_module(TRIGGERS[subject])
    triggers_cpu = time.process_time() - triggers_cpu
    print(
        json.dumps(
            {
                "wall_ms": wall * 1000,
                "cpu_ms": cpu * 1000,
                **waited,
                "triggers_cpu_ms": triggers_cpu * 1000,
                "added": added,
                "loaded_by_sdk": sorted(
                    name
                    for name in before
                    if any(name == p or name.startswith(p + ".") for g in FORBIDDEN.values() for p in g)
                ),
            }
        )
    )


def _usage() -> dict[str, int]:
    """
    What makes wall time exceed CPU time in this process so far: the times another process got the
    CPU (``preempted``), the times it waited for I/O or a lock (``blocked``) and page faults that
    read a disk (``major_faults``).
    """
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"preempted": usage.ru_nivcsw, "blocked": usage.ru_nvcsw, "major_faults": usage.ru_majflt}


def _waits_note(samples: Sequence[dict[str, Any]]) -> str:
    """Why the wall figure exceeds the CPU figure, counted over ``samples``."""
    preempted = sum(1 for s in samples if s["preempted"])
    blocked = sum(s["blocked"] for s in samples)
    faults = sum(s["major_faults"] for s in samples)
    unpreempted = [s["wall_ms"] - s["cpu_ms"] for s in samples if not s["preempted"]]
    gap = f"{median(unpreempted):.2f} ms" if unpreempted else "-"
    return (
        f"wall - CPU is time spent waiting: {preempted} of {len(samples)} samples were preempted "
        f"(another process had the CPU), {blocked} waits for I/O or a lock, {faults} page faults "
        f"read a disk; wall - CPU in the samples never preempted: {gap}"
    )


def watcher_worker(spelling: str) -> None:
    """In a fresh interpreter: import airflow.sdk, then time declaring a watcher ``spelling``; print JSON."""
    import json
    import time

    import airflow.sdk  # noqa: F401 - the baseline every DAG file pays

    wall, cpu = time.perf_counter(), time.process_time()
    exec(WATCHERS[spelling], {})
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(json.dumps({"wall_ms": wall * 1000, "cpu_ms": cpu * 1000}))


def _has_common_messaging() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("airflow.providers.common.messaging") is not None
    except ImportError:
        return False


def _watcher_rows(samples: int, env: dict[str, str]) -> list[Row]:
    """The watcher declared directly and through MessageQueueTrigger, side by side."""
    if not _has_common_messaging():
        return []
    me = __file__
    for spelling in WATCHERS:  # bytecode caches first
        run_json([me, "--watcher", spelling], timeout=180, env=env)
    results: dict[str, list[dict[str, Any]]] = {spelling: [] for spelling in WATCHERS}
    for _ in range(samples):
        for spelling in WATCHERS:
            results[spelling].append(run_json([me, "--watcher", spelling], timeout=180, env=env))
    direct = median(s["cpu_ms"] for s in results["direct"])
    queue = median(s["cpu_ms"] for s in results["message_queue"])
    return [
        Row(
            figure="DAG parse: an event watcher as MessageQueueTrigger(scheme='octanist'), CPU time",
            value=queue,
            unit="ms",
            goal="- (no goal set)",
            met=None,
            peer=direct,
            peer_name="OctanistLeadEventTrigger directly",
            ratio=ratio(queue, direct),
            ratio_note="dearer",
            runs=samples,
            note="import, build and serialize after `import airflow.sdk`; most of the difference is "
            "common-messaging itself (it initialises Airflow's providers manager and imports every "
            "registered queue module); ours adds the one module airflow_provider_octanist.queues.octanist",
        )
    ]


def _forbidden_added(added: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for label, prefixes in FORBIDDEN.items():
        hits = [name for name in added if any(name == p or name.startswith(p + ".") for p in prefixes)]
        if hits:
            found[label] = hits
    return found


def _added_cost(ours: float, peer: float) -> dict[str, Any]:
    """Row fields of an import cost with the goal of at most ``GOAL_MS`` added (ratio: peer / ours)."""
    return {
        "value": ours,
        "unit": "ms",
        "goal": f"<= {GOAL_MS:g} ms added",
        "met": ours <= GOAL_MS,
        "peer": peer,
        "peer_name": "HttpOperator + HttpSensor",
        "ratio": ratio(peer, ours),
        "ratio_note": "cheaper",
    }


def measure(smoke: bool) -> list[Row]:
    """Interleaved fresh-interpreter samples of both subjects; one row per figure."""
    samples = SMOKE_SAMPLES if smoke else FULL_SAMPLES
    env = child_env()
    me = __file__
    # The first run of each writes its bytecode caches (not measured: deployed code is precompiled).
    for subject in SUBJECTS:
        run_json([me, "--worker", subject], timeout=180, env=env)
    results: dict[str, list[dict[str, Any]]] = {subject: [] for subject in SUBJECTS}
    for _ in range(samples):
        for subject in SUBJECTS:
            results[subject].append(run_json([me, "--worker", subject], timeout=180, env=env))
    ours, http = results["octanist"], results["http"]
    wall, peer_wall = median(s["wall_ms"] for s in ours), median(s["wall_ms"] for s in http)
    cpu, peer_cpu = median(s["cpu_ms"] for s in ours), median(s["cpu_ms"] for s in http)
    triggers, peer_triggers = (
        median(s["cpu_ms"] + s["triggers_cpu_ms"] for s in ours),
        median(s["cpu_ms"] + s["triggers_cpu_ms"] for s in http),
    )
    watcher_rows = _watcher_rows(samples, env)
    leaks = _forbidden_added(ours[-1]["added"])
    peer_leaks = _forbidden_added(http[-1]["added"])
    clean = not leaks
    forbidden_text = "none" if clean else "; ".join(f"{k}: {', '.join(v[:3])}" for k, v in leaks.items())
    return [
        Row(
            figure="DAG parse: import operators + sensor after `import airflow.sdk`, wall",
            **_added_cost(wall, peer_wall),
            runs=samples,
            note=f"{len(ours[-1]['added'])} modules added (HTTP provider: {len(http[-1]['added'])}); "
            + _waits_note(ours),
        ),
        Row(
            figure="DAG parse: the same, CPU time",
            **_added_cost(cpu, peer_cpu),
            runs=samples,
            note="what the import costs the DAG processor whatever else the machine is doing",
        ),
        Row(
            figure="DAG parse: operators + sensor + triggers modules (event-driven DAGs), CPU time",
            value=triggers,
            unit="ms",
            goal="- (no goal set)",
            met=None,
            peer=peer_triggers,
            peer_name="HTTP provider triggers",
            ratio=ratio(peer_triggers, triggers),
            ratio_note="cheaper",
            runs=samples,
            note="most of the difference to the row above is Airflow's own airflow.triggers package, "
            "which any trigger module needs (the HTTP sensor module imports its triggers anyway)",
        ),
        Row(
            figure="DAG parse: modules added that a task definition does not need "
            "(requests, httpx, aiohttp, pendulum parsing, testing server, hooks, triggers)",
            value=None,
            unit="",
            text=forbidden_text,
            goal="none",
            met=clean,
            note=f"ours: {forbidden_text}; HTTP provider: "
            + ("; ".join(f"{k} ({len(v)} modules)" for k, v in peer_leaks.items()) or "none")
            + f"; already loaded by airflow.sdk: {', '.join(_top_level(ours[-1]['loaded_by_sdk'])) or '-'}",
            extra={
                "added_by_octanist": ours[-1]["added"],
                "forbidden_added_by_octanist": leaks,
                "forbidden_added_by_http": {k: len(v) for k, v in peer_leaks.items()},
            },
        ),
        *watcher_rows,
    ]


def _top_level(names: Sequence[str]) -> list[str]:
    return sorted({name.split(".")[0] if not name.startswith("pendulum.") else name for name in names})


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them); or be one sample's interpreter."""
    workers = {"--worker": lambda args: worker(args[0]), "--watcher": lambda args: watcher_worker(args[0])}
    return bench_main(__doc__ or "", measure, argv, workers)


if __name__ == "__main__":
    sys.exit(main())
