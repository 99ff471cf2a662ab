"""
Won leads never wait: the event-driven guarantee under the conditions that strand asset events on
Airflow 3.0-3.3, with real Airflow processes as production runs them.

One deployment for the whole module, shaped as production runs Airflow: Postgres, CeleryExecutor
(a Redis broker and a Celery worker, which runs every task), a scheduler, a DAG processor, an API
server and TWO triggerers. Each scenario has its own consumer DAG, asset, watcher and fake
Octanist server (``dags/octanist_lead_won_scenarios.py``), written the way the README documents
(``lead_event_schedule`` + ``sweep_stranded_events``):

(a) busy: ``max_active_runs=1``, a booking slower than the poll interval, three leads won in three
    polls; the unblocking moment is the end of the run ahead of each lead's run;
(b) scheduler pause: the scheduler is SIGSTOPped while two polls find wins, then SIGCONTed;
(c) unpause: the only consumer DAG of the asset is paused (its watcher stops), a lead is won,
    the DAG is unpaused;
(d) failover: the triggerer running the watcher is SIGKILLed (whole process group), a lead is won,
    the other triggerer adopts the watcher;
(e) a server's habits: microseconds stored but milliseconds printed, 50 leads a page whatever the
    limit asked; 120 leads won in one bulk update, then more one by one;

and what happens otherwise in (c): a DAG paused while a second DAG on the same asset keeps the
watcher running gets the leads won meanwhile with the next event on its assets, not at the unpause.

Each asserts every lead booked exactly once, no later than one poll interval plus 60 s after the
unblocking moment, the number of runs (no sweep runs in the steady state, at most one per stranded
batch), and the sweep's log line where it swept. Measurements are printed (``-s``) and recorded as
test properties.

Runs only with ``OCTANIST_REQUIRE_POSTGRES`` set (``make e2e-postgres``), so the quick local suite
stays on sqlite; with it set, a missing Postgres (binaries, psycopg2, asyncpg) is a failure.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import _airflow
import celery_broker
import postgres
import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS

from airflow_provider_octanist.testing import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Event-driven scheduling needs Airflow 3.0+."),
]

SCENARIO_DAGS = Path(__file__).resolve().parent / "dags" / "octanist_lead_won_scenarios.py"
FAULT_HOOKS = Path(__file__).resolve().parent / "fault_hooks"
"""On every component's PYTHONPATH: the redelivery scenario's watcher can be made to hold its position."""
POLL_SECONDS = 2.0
BUSY_TASK_SECONDS = 10.0
DEADLINE = POLL_SECONDS + 60.0
"""The guarantee: a lead's task starts no later than this many seconds after the unblocking moment."""
STARTUP = 300.0
LONG_AGO = "2026-01-01T00:00:00.000Z"
SWEEP_LOG = "stranded asset event(s)"
SWEEP_ASSETS = "octanist-event-sweep/"
SCENARIOS = (
    "busy",
    "scheduler_pause",
    "unpause",
    "failover",
    "shared_unpause",
    "server_habits",
    "server_quirks",
    "redelivery",
)
"""One fake server, connection and watched asset each; ``shared_unpause_peer`` watches shared_unpause's."""
PAGE_CAP = 50
HABITS: dict[str, dict[str, Any]] = {
    # stores microseconds, prints milliseconds
    "server_habits": {"timestamp_precision": "us", "printed_precision": "ms"},
    # stamps and prints microseconds, its clock (meta.timestamp) in milliseconds and three hours
    # behind: local time written as UTC
    "server_quirks": {"timestamp_precision": "us"},
}
"""How a scenario's server keeps time; both also serve at most ``PAGE_CAP`` leads a page."""
QUIRKS = {"clock_precision": "ms", "clock_offset": timedelta(hours=-3)}


def dag_id(scenario: str) -> str:
    return f"octanist_scenario_{scenario}"


class Postgres(_airflow.PostgresDB):
    """What the scenarios read from the Postgres metadata database."""

    def runs(self, scenario: str) -> list[dict[str, Any]]:
        """Every run of the scenario's DAG, oldest first, with the kinds of events it consumed."""
        runs = []
        for run_pk, run_id, state, end_date in self.rows(
            "SELECT id, run_id, state, end_date FROM dag_run WHERE dag_id = %s ORDER BY id", dag_id(scenario)
        ):
            consumed = self.rows(
                "SELECT a.name, e.extra FROM dagrun_asset_event d JOIN asset_event e ON e.id = d.event_id "
                "JOIN asset a ON a.id = e.asset_id WHERE d.dag_run_id = %s",
                run_pk,
            )
            runs.append(
                {
                    "run_id": run_id,
                    "state": state,
                    "ended": end_date.timestamp() if end_date else None,
                    "lead_events": sum(
                        1 for name, _ in consumed if not name.startswith("octanist-event-sweep/")
                    ),
                    "sweep_events": sum(
                        1 for name, _ in consumed if name.startswith("octanist-event-sweep/")
                    ),
                }
            )
        return runs

    def lead_events(self, scenario: str) -> list[list[str]]:
        """The lead ids of each trigger event of the scenario's asset, oldest first."""
        return [
            _airflow.event_leads(extra)
            for (extra,) in self.rows(
                "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
                "WHERE a.name = %s ORDER BY e.id",
                f"octanist_lead_won_{scenario}",
            )
        ]

    def event_stored(self, scenario: str, lead_id: str) -> float | None:
        """When the asset event carrying ``lead_id`` was stored (epoch seconds), or ``None``."""
        for timestamp, extra in self.rows(
            "SELECT e.timestamp, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.name = %s ORDER BY e.id",
            f"octanist_lead_won_{scenario}",
        ):
            if lead_id in _airflow.event_leads(extra):
                return float(timestamp.timestamp())
        return None

    def sweep_events(self, scenario: str) -> int:
        return len(
            self.rows(
                "SELECT e.id FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = %s",
                f"{SWEEP_ASSETS}{dag_id(scenario)}",
            )
        )


class Deployment(_airflow.Stack):
    """The running stack, one fake Octanist server per scenario, and what the tests observe."""

    dags_label = "the scenario DAGs"
    db: Postgres

    def __init__(
        self,
        airflow: _airflow.AirflowProcesses,
        db: Postgres,
        servers: dict[str, FakeOctanistServer],
        bookings: Path,
    ) -> None:
        super().__init__(airflow, db, bookings)
        self.servers = servers

    def observed(self) -> str:
        return "\n".join(
            [
                super().observed(),
                *(f"{s}: events {self.db.lead_events(s)} runs {self.db.runs(s)}" for s in SCENARIOS),
            ]
        )

    def booked(self, scenario: str) -> dict[str, list[dict[str, Any]]]:
        """Lead id -> every booking the scenario's DAG made of it."""
        return _airflow.read_bookings(self.bookings, dag_id(scenario))

    def polls_since(self, scenario: str, moment: float) -> int:
        return _airflow.polls_since(self.servers[scenario.removesuffix("_peer")], moment)

    def quiet_for(self, scenario: str) -> float:
        """Seconds since the scenario's server last saw a poll."""
        polls = [r.received_at for r in self.servers[scenario].requests if _airflow.is_poll(r)]
        return time.monotonic() - max(polls, default=0.0)

    def win(self, scenario: str, name: str) -> str:
        """A lead of the scenario's server turns won; wait until its asset event is stored."""
        server = self.servers[scenario]
        lead = server.add_lead(name=name, email=f"{name.lower()}@example.com", createdAt=LONG_AGO)
        server.set_status(lead["id"], "won", value=100)
        self.wait_for(
            lambda: any(lead["id"] in leads for leads in self.db.lead_events(scenario)),
            POLL_SECONDS + 30,
            f"the asset event of {name} ({scenario})",
        )
        return str(lead["id"])

    def wait_booked(self, scenario: str, lead_ids: list[str], by: float, what: str) -> dict[str, float]:
        """Wait until each lead is booked (no later than ``by``, a time.time()); their task starts."""
        self.wait_for(
            lambda: all(lead_id in self.booked(scenario) for lead_id in lead_ids),
            max(by - time.time(), 0) + 5,
            what,
        )
        return {lead_id: self.booked(scenario)[lead_id][0]["started"] for lead_id in lead_ids}

    def celery_tasks_done(self) -> int:
        """Task workloads the Celery worker reports as succeeded: the executor really is Celery."""
        log = self.airflow.logs["worker-1"].read_text(errors="replace")
        return sum(1 for line in log.splitlines() if "execute_workload[" in line and "succeeded" in line)

    def sweep_logged(self, scenario: str) -> list[str]:
        """The sweep task's log lines that report stranded events, over every run of the DAG."""
        logs = Path(self.airflow.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id(scenario)}"
        return [
            line
            for path in logs.glob("run_id=*/task_id=sweep_stranded_events/*.log")
            for line in path.read_text(errors="replace").splitlines()
            if SWEEP_LOG in line
        ]

    def watcher_holder(self, scenario: str) -> str:
        """The triggerer running the scenario's watcher: the one whose SIGSTOP stops the polls.

        Its log is no guide: at start-up both triggerers may log the watcher (triggers move once).
        Each probe stops a triggerer for three poll intervals, well under the health-check
        threshold, so nothing is adopted meanwhile.
        """
        for name in [n for n in self.airflow.procs if n.startswith("triggerer")]:
            with self.airflow.suspended(name):
                stopped = time.monotonic()
                until = stopped + 3 * POLL_SECONDS
                self.wait_for(lambda u=until: time.monotonic() > u, 30, f"a probe of {name}")
                polls = self.polls_since(scenario, stopped + POLL_SECONDS)  # one in flight may land
            if polls == 0:
                return name
        raise AssertionError(f"The {scenario} watcher kept polling whichever triggerer was stopped.")

    def settle_and_check(self, scenario: str, lead_ids: list[str]) -> list[dict[str, Any]]:
        """After the last booking: no run left active, every lead booked exactly once."""

        def settled() -> bool:
            return all(r["state"] in ("success", "failed") for r in self.db.runs(scenario))

        self.wait_for(settled, 120, f"every run of {scenario} to finish")
        # Three more polls, and every run they (or a sweep) started over: a lead booked twice would
        # show up by now.
        moment = time.monotonic()
        self.wait_for(
            lambda: self.polls_since(scenario, moment) >= 3 and settled(),
            120,
            f"three polls of {scenario} and every run started meanwhile to finish",
        )
        booked = self.booked(scenario)
        assert {lead_id: len(booked.get(lead_id, [])) for lead_id in lead_ids} == dict.fromkeys(lead_ids, 1)
        runs = self.db.runs(scenario)
        assert all(r["state"] == "success" for r in runs), runs
        return runs


def measured(starts: dict[str, float], unblocked: dict[str, float] | float) -> dict[str, float]:
    return {
        lead: round(start - (unblocked[lead] if isinstance(unblocked, dict) else unblocked), 2)
        for lead, start in starts.items()
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not os.environ.get(postgres.REQUIRE_ENV):
        pytest.skip(
            f"Minutes of real Airflow on Postgres: `make e2e-postgres` sets {postgres.REQUIRE_ENV}=1."
        )
    reason = postgres.missing() or celery_broker.missing()
    if reason:
        pytest.fail(f"{postgres.REQUIRE_ENV} is set but {reason}")
    home, dags, bookings = _airflow.airflow_home(tmp_path_factory.mktemp("octanist-pg-e2e"), SCENARIO_DAGS)
    servers = {s: FakeOctanistServer(api_key=f"e2e-key-{s}", **HABITS.get(s, {})) for s in SCENARIOS}
    for name in HABITS:
        servers[name].page_cap = PAGE_CAP
    for switch, value in QUIRKS.items():
        setattr(servers["server_quirks"], switch, value)
    with (
        postgres.throwaway_postgres() as url,
        celery_broker.throwaway_redis() as broker,
        contextlib.ExitStack() as running,
    ):
        for server in servers.values():
            running.enter_context(server)
        settings = {
            **celery_broker.celery_settings(broker, url),
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            "OCTANIST_SCENARIO_POLL_SECONDS": str(POLL_SECONDS),
            "OCTANIST_SCENARIO_BUSY_SECONDS": str(BUSY_TASK_SECONDS),
            "OCTANIST_SCENARIO_OUTPUT_DIR": str(bookings),
            "PYTHONPATH": os.pathsep.join(p for p in (str(FAULT_HOOKS), os.environ.get("PYTHONPATH")) if p),
            "OCTANIST_E2E_HOLD_SAVES": str(bookings.parent / "hold-saves"),
            "OCTANIST_E2E_HOLD_CONN": "octanist_redelivery",
        }
        for scenario, server in servers.items():
            settings[f"AIRFLOW_CONN_OCTANIST_{scenario.upper()}"] = _airflow.octanist_connection(server)
        airflow = running.enter_context(
            _airflow.running_airflow(
                home,
                dags,
                url,
                settings,
                triggerers=("triggerer-1", "triggerer-2"),
                celery_workers=("worker-1",),
            )
        )
        stack = Deployment(airflow, Postgres(url), servers, bookings)
        stack.wait_for_api_server(STARTUP)
        for scenario in SCENARIOS:
            stack.wait_for(
                lambda s=scenario: stack.polls_since(s, 0) >= 2,
                STARTUP,
                f"the {scenario} watcher's polls",
            )
        yield stack


def test_a_busy_dag_at_max_active_runs_books_every_lead_after_the_run_ahead_of_it(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    stack, scenario = deployment, "busy"
    # Three leads won in three polls, a few seconds apart, while the bookings (10 s) run one at a time.
    leads = [stack.win(scenario, name) for name in ("Ann", "Ben", "Cat")]
    # Once a sweep has emitted its event, a fourth lead is won while the run ahead still books: its
    # queue row exists legitimately, so the sweep event must merge into the run it starts anyway.
    swept = stack.wait_for(
        lambda: stack.db.sweep_events(scenario) or len(stack.booked(scenario)) == len(leads),
        3 * (BUSY_TASK_SECONDS + DEADLINE),
        "a sweep event or every booking",
    )
    late = stack.win(scenario, "Dot") if stack.db.sweep_events(scenario) else None
    leads += [late] if late else []
    starts = stack.wait_booked(
        scenario, leads, time.time() + 3 * (BUSY_TASK_SECONDS + DEADLINE), "the busy DAG's bookings"
    )
    runs = stack.settle_and_check(scenario, leads)
    assert stack.celery_tasks_done() >= len(leads), "the bookings ran, but not on the Celery worker"
    # Unblocking moment of each lead: the end of the run ahead of the run that booked it.
    booked = stack.booked(scenario)
    run_ids = [r["run_id"] for r in runs]
    ahead: dict[str, float] = {}
    for lead in leads:
        index = run_ids.index(booked[lead][0]["run_id"])
        if index > 0:  # the first lead has no run ahead of it
            ahead[lead] = runs[index - 1]["ended"]
    latency = measured({lead: starts[lead] for lead in ahead}, ahead)
    assert all(seconds <= DEADLINE for seconds in latency.values()), latency
    sweeps = [r for r in runs if r["sweep_events"]]
    lead_runs = [r for r in runs if r["lead_events"]]
    assert all(r["lead_events"] for r in runs), f"a run without leads: {runs}"
    assert len(sweeps) <= 1, runs
    merged = None
    if sweeps:
        assert stack.sweep_logged(scenario), "a sweep run happened, but no sweep task logged stranded events"
        sweep_run = runs.index(sweeps[0])
        stored = stack.db.event_stored(scenario, late) if late else None
        if stored is not None and stored < runs[sweep_run - 1]["ended"]:
            # Stored while the run ahead still ran: one run for the stranded lead, the late one and
            # the sweep event, no run of its own for the sweep.
            merged = booked[late][0]["run_id"] == sweeps[0]["run_id"]
            assert merged, runs
    _airflow.report(
        record_property,
        scenario,
        {
            "sweep_merged_into_the_late_leads_run": merged,
            "swept_before_the_late_lead": bool(swept),
            "after_run_ahead_ended_s": latency,
            "runs": len(runs),
            "runs_that_consumed_a_sweep_event": len(sweeps),
            "extra_runs": len(sweeps) - (1 if merged else 0),
            "lead_events": stack.db.lead_events(scenario),
            "runs_detail": [(r["lead_events"], r["sweep_events"]) for r in lead_runs],
        },
    )


def test_after_a_scheduler_pause_every_lead_found_meanwhile_is_booked(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    stack, scenario = deployment, "scheduler_pause"
    with stack.airflow.suspended("scheduler"):
        leads = [stack.win(scenario, name) for name in ("Dan", "Eva")]  # two polls, two events
    resumed = time.time()
    starts = stack.wait_booked(scenario, leads, resumed + DEADLINE, "bookings after the scheduler resumed")
    runs = stack.settle_and_check(scenario, leads)
    latency = measured(starts, resumed)
    assert all(seconds <= DEADLINE for seconds in latency.values()), latency
    sweeps = [r for r in runs if r["sweep_events"]]
    assert len(runs) <= 2, runs
    assert len(sweeps) <= 1, runs
    if sweeps:
        assert stack.sweep_logged(scenario), "a sweep run happened, but no sweep task logged stranded events"
    _airflow.report(
        record_property,
        scenario,
        {
            "after_resume_s": latency,
            "runs": len(runs),
            "runs_started_by_a_sweep": len(sweeps),
        },
    )


def airflow_cli(stack: Deployment, *args: str) -> None:
    stack.airflow.run(*args, timeout=120)


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Before 3.3 a restarted watcher starts again at 'now'.")
def test_a_lead_won_while_the_only_consumer_dag_was_paused_is_booked_after_the_unpause(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    stack, scenario = deployment, "unpause"
    paused = time.time()  # the pause command is issued (the CLI itself takes seconds)
    airflow_cli(stack, "dags", "pause", dag_id(scenario))
    # No unpaused DAG uses the asset any more: its watcher is stopped, and polls stop.
    stack.wait_for(
        lambda: stack.quiet_for(scenario) > 3 * POLL_SECONDS, 90, "the paused DAG's watcher to stop polling"
    )
    stopped_after = round(time.time() - 3 * POLL_SECONDS - paused, 1)
    server = stack.servers[scenario]
    lead = server.add_lead(name="Fay", email="fay@example.com", createdAt=LONG_AGO)
    server.set_status(lead["id"], "won", value=100)
    airflow_cli(stack, "dags", "unpause", dag_id(scenario))
    unpaused = time.time()
    starts = stack.wait_booked(scenario, [lead["id"]], unpaused + DEADLINE, "the booking after the unpause")
    runs = stack.settle_and_check(scenario, [lead["id"]])
    latency = measured(starts, unpaused)
    assert latency[lead["id"]] <= DEADLINE, latency
    assert [r["sweep_events"] for r in runs] == [0] * len(runs), runs
    _airflow.report(
        record_property,
        scenario,
        {
            "after_unpause_s": latency,
            "runs": len(runs),
            "runs_started_by_a_sweep": 0,
            "watcher_stopped_after_pause_s": stopped_after,
        },
    )


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Before 3.3 a restarted watcher starts again at 'now'.")
def test_a_dag_paused_while_another_keeps_the_watcher_running_gets_its_leads_with_the_next_event(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    """What Airflow does, documented: the event is stored during the pause, but queues no run for
    the paused DAG; the unpause starts none either; the next event on its assets does, and that
    run consumes both."""
    stack, scenario, peer = deployment, "shared_unpause", "shared_unpause_peer"
    airflow_cli(stack, "dags", "pause", dag_id(scenario))
    first = stack.win(scenario, "Hal")  # the peer keeps the watcher running: the event is stored
    stack.wait_booked(peer, [first], time.time() + DEADLINE, "the peer's booking during the pause")
    airflow_cli(stack, "dags", "unpause", dag_id(scenario))
    unpaused = time.time()
    moment = time.monotonic()
    stack.wait_for(lambda: stack.polls_since(scenario, moment) >= 5, 60, "five polls after the unpause")
    assert stack.booked(scenario) == {}, "the unpause alone started a run"
    assert stack.db.runs(scenario) == []
    second = stack.win(scenario, "Ivy")
    won_again = time.time()
    starts = stack.wait_booked(
        scenario, [first, second], won_again + DEADLINE, "both leads with the next event"
    )
    runs = stack.settle_and_check(scenario, [first, second])
    assert len(runs) == 1, runs
    stack.settle_and_check(peer, [first, second])
    _airflow.report(
        record_property,
        scenario,
        {
            "first_lead_waited_after_unpause_s": round(starts[first] - unpaused, 2),
            "after_next_win_s": measured(starts, won_again),
            "runs": len(runs),
        },
    )


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Before 3.3 an adopted watcher starts again at 'now'.")
def test_a_sigkilled_triggerer_hands_the_watcher_to_the_other_one(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    stack, scenario = deployment, "failover"
    victim = stack.watcher_holder(scenario)
    stack.airflow.kill(victim)  # SIGKILL to its whole process group
    killed, killed_at = time.time(), time.monotonic()
    # A lead is won while no triggerer runs the watcher.
    server = stack.servers[scenario]
    won = server.add_lead(name="Gus", email="gus@example.com", createdAt=LONG_AGO)
    server.set_status(won["id"], "won", value=100)
    # Adopted: the other triggerer's watcher polls again.
    adopted = stack.wait_for(
        lambda: stack.polls_since(scenario, killed_at) > 0 and time.time(), DEADLINE, "the watcher's adoption"
    )
    starts = stack.wait_booked(
        scenario, [won["id"]], killed + DEADLINE + 30, "the booking after the failover"
    )
    runs = stack.settle_and_check(scenario, [won["id"]])
    latency = measured(starts, killed)
    assert [r["sweep_events"] for r in runs] == [0] * len(runs), runs
    _airflow.report(
        record_property,
        scenario,
        {
            "adopted_after_kill_s": round(adopted - killed, 2),
            "task_after_kill_s": latency,
            "task_after_adoption_s": measured(starts, adopted),
            "runs": len(runs),
            "runs_started_by_a_sweep": 0,
        },
    )
    assert latency[won["id"]] - (adopted - killed) <= DEADLINE, latency


def test_microseconds_printed_as_milliseconds_and_a_page_cap_book_every_lead_once(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    # 120 microsecond stamps, printed as one millisecond
    _a_bulk_update_and_later_wins_book_once(deployment, "server_habits", 1, ("Jon", "Kim"), record_property)


def test_microsecond_stamps_a_millisecond_clock_hours_behind_and_a_page_cap_book_every_lead_once(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    # won 37 microseconds apart: pages of 50 end inside milliseconds
    _a_bulk_update_and_later_wins_book_once(deployment, "server_quirks", 37, ("Lea", "Max"), record_property)
    # Its watcher is spelled MessageQueueTrigger(scheme="octanist"): Airflow stored, and the
    # triggerer ran, the lead event trigger itself.
    stored = deployment.db.rows(
        "SELECT t.classpath FROM trigger t JOIN asset_watcher w ON w.trigger_id = t.id "
        "JOIN asset a ON a.id = w.asset_id WHERE a.name = %s",
        "octanist_lead_won_server_quirks",
    )
    assert stored == [("airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger",)], stored


def _a_bulk_update_and_later_wins_book_once(
    stack: Deployment,
    scenario: str,
    apart_us: int,
    later_names: tuple[str, ...],
    record_property: Callable[[str, object], None],
) -> None:
    """120 leads won in one bulk update ``apart_us`` microseconds apart, and later wins: each booked once."""
    server = stack.servers[scenario]
    bulk = server.add_leads(120, createdAt=LONG_AGO)
    moment = time.monotonic()
    with server.at_once():  # one bulk update
        at = server.now()
        for n, lead in enumerate(bulk):
            server.set_status(
                lead["id"], "won", value=100, at=at + timedelta(microseconds=apart_us * (n + 1))
            )
    won = time.time()
    leads = [lead["id"] for lead in bulk]
    stack.wait_for(
        lambda: {i for event in stack.db.lead_events(scenario) for i in event} >= set(leads),
        POLL_SECONDS + 60,
        "the asset events of the bulk",
    )
    leads += [stack.win(scenario, name) for name in later_names]  # later wins keep being seen
    starts = stack.wait_booked(scenario, leads, won + 600, "every booking of the bulk and the later wins")
    runs = stack.settle_and_check(scenario, leads)
    reported = [lead_id for event in stack.db.lead_events(scenario) for lead_id in event]
    assert sorted(reported) == sorted(leads), "each lead in exactly one event"
    pages = [r for r in server.requests if _airflow.is_poll(r) and r.received_at >= moment]
    _airflow.report(
        record_property,
        scenario,
        {
            "leads": len(leads),
            "events": len(stack.db.lead_events(scenario)),
            "runs": len(runs),
            "list_requests_since_the_bulk": len(pages),
            "last_booking_after_bulk_s": round(max(starts.values()) - won, 2),
        },
    )


def test_changes_delivered_again_after_a_triggerer_dies_are_booked_once(
    deployment: Deployment, record_property: Callable[[str, object], None]
) -> None:
    stack, scenario = deployment, "redelivery"
    server = stack.servers[scenario]
    victim = stack.watcher_holder(scenario)
    triggerers = [n for n in stack.airflow.procs if n.startswith("triggerer")]
    if len(triggerers) < 2:  # an earlier scenario killed one: a new one adopts the watcher
        stack.airflow.start("triggerer-3", "triggerer", "--skip-serve-logs")
    hold = Path(stack.airflow.env["OCTANIST_E2E_HOLD_SAVES"])
    held = hold.with_name(hold.name + ".held")
    hold.touch()  # the watcher's next save of its position waits (tests/system/fault_hooks)
    try:
        leads = []
        for name in ("Ida", "Jay"):
            lead = server.add_lead(name=name, email=f"{name.lower()}@example.com", createdAt=LONG_AGO)
            server.set_status(lead["id"], "won", value=100)
            leads.append(str(lead["id"]))
        stack.wait_for(
            lambda: {i for event in stack.db.lead_events(scenario) for i in event} >= set(leads),
            POLL_SECONDS + 30,
            "the asset events of the wins",
        )
        stack.wait_for(held.exists, POLL_SECONDS + 30, "the watcher to hold the position after them")
        stack.airflow.kill(victim)  # Airflow stored the event; the watcher never stored its position
        killed = time.time()
    finally:
        hold.unlink(missing_ok=True)
    stack.wait_for(
        lambda: sum(bool(set(leads) & set(event)) for event in stack.db.lead_events(scenario)) >= 2,
        DEADLINE + 30,
        "the adopting triggerer to report the same changes again",
    )
    stack.wait_booked(scenario, leads, killed + DEADLINE + 60, "the bookings")
    runs = stack.settle_and_check(scenario, leads)  # each lead booked exactly once
    carriers = [event for event in stack.db.lead_events(scenario) if set(leads) & set(event)]
    _airflow.report(
        record_property,
        scenario,
        {"events_carrying_the_wins": len(carriers), "runs": len(runs), "bookings_per_lead": 1},
    )
