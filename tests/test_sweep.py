"""The stranded-event sweep: which events count as stranded, what the task does, how a DAG wires it."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

from airflow_provider_octanist.sweep import SWEEP_EVENT_KIND, stranded_events

QUEUED = datetime(2026, 3, 10, 12, 0, 0, tzinfo=timezone.utc)
STARTED = QUEUED + timedelta(seconds=20)
DAG_ID = "book_won_leads"

airflow_3 = pytest.mark.skipif(
    not AIRFLOW_V_3_0_PLUS, reason="asset watchers and inlet_events need Airflow 3"
)


@dataclass
class Run:
    dag_id: str
    run_id: str = "asset_triggered__2026-03-10T12:00:00"


@dataclass
class Event:
    """Shaped like the Task SDK's ``AssetEventResult``: id, timestamp, extra, created_dagruns."""

    id: int
    timestamp: datetime
    extra: dict[str, Any] | None = field(default_factory=lambda: {"from_trigger": True, "payload": {}})
    created_dagruns: list[Run] = field(default_factory=list)


def at(seconds: float) -> datetime:
    return QUEUED + timedelta(seconds=seconds)


def stranded_ids(*events: Event) -> list[int]:
    return [e.id for e in stranded_events(events, dag_id=DAG_ID, after=QUEUED, until=STARTED)]


def test_a_trigger_event_stored_while_the_run_was_queued_and_consumed_by_no_run_is_stranded() -> None:
    assert stranded_ids(Event(1, at(5))) == [1]


def test_an_event_consumed_by_this_or_another_run_of_the_dag_is_not_stranded() -> None:
    assert stranded_ids(Event(1, at(5), created_dagruns=[Run(DAG_ID)])) == []


def test_an_event_consumed_only_by_other_dags_is_still_stranded_for_this_one() -> None:
    assert stranded_ids(Event(1, at(5), created_dagruns=[Run("another_dag")])) == [1]


def test_events_up_to_the_moment_the_run_was_queued_are_never_swept() -> None:
    # In this run's own window: consumed already, or older than the DAG's schedule (no run would
    # ever take it, so sweeping it would start an extra run after every run).
    assert stranded_ids(Event(1, QUEUED), Event(2, at(-60))) == []


def test_events_stored_after_the_run_started_belong_to_the_next_run() -> None:
    assert stranded_ids(Event(1, STARTED), Event(2, STARTED + timedelta(milliseconds=1))) == [1]


def test_only_trigger_events_count() -> None:
    by_hand = Event(1, at(5), extra={})
    sweep = Event(2, at(5), extra={"kind": SWEEP_EVENT_KIND})
    no_extra = Event(3, at(5), extra=None)
    assert stranded_ids(by_hand, sweep, no_extra) == []


@dataclass
class Accessor:
    """The Task SDK's ``InletEventsAccessor``: bounded reads (after/before inclusive, limit)."""

    events: list[Event]
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def after(self, moment: str) -> Accessor:
        self.calls.append(("after", moment))
        return self

    def before(self, moment: str) -> Accessor:
        self.calls.append(("before", moment))
        return self

    def limit(self, count: int) -> Accessor:
        self.calls.append(("limit", count))
        return self

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Any:
        return iter(self.events)


class ByAsset:
    """``inlet_events`` / ``outlet_events``: looked up by asset (Airflow 3.0's assets are unhashable)."""

    def __init__(self, entries: dict[str, Any]) -> None:
        self.entries = entries

    def __getitem__(self, asset: Any) -> Any:
        return self.entries[asset.name]


class Outlet:
    extra: dict[str, Any] | None = None


def sweep_context(events: list[Event]) -> tuple[dict[str, Any], Any, Any, Accessor, Outlet]:
    from airflow.sdk import Asset

    from airflow_provider_octanist.sweep import sweep_asset

    watched, own = Asset("octanist_lead_won"), sweep_asset(DAG_ID)
    accessor, outlet = Accessor(events), Outlet()

    @dataclass
    class DagRun:
        dag_id: str = DAG_ID
        run_id: str = "asset_triggered__2026-03-10T12:00:00"
        run_after: datetime = QUEUED
        start_date: datetime = STARTED

    context = {
        "dag_run": DagRun(),
        "inlet_events": ByAsset({watched.name: accessor}),
        "outlet_events": ByAsset({own.name: outlet}),
    }
    return context, watched, own, accessor, outlet


@airflow_3
def test_the_task_reads_a_bounded_window_and_skips_when_nothing_is_stranded() -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from airflow_provider_octanist.sweep import _sweep

    context, watched, own, accessor, outlet = sweep_context([Event(1, at(5), created_dagruns=[Run(DAG_ID)])])
    with pytest.raises(AirflowSkipException, match="No stranded events"):
        _sweep(context, watched=[watched], own=own, max_events=50)
    assert accessor.calls == [("after", QUEUED.isoformat()), ("before", STARTED.isoformat()), ("limit", 50)]
    assert outlet.extra is None


@airflow_3
def test_the_task_logs_the_stranded_events_and_emits_one_sweep_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow_provider_octanist.sweep import _sweep

    context, watched, own, _, outlet = sweep_context([Event(7, at(5)), Event(8, at(6))])
    with caplog.at_level("INFO", logger="airflow_provider_octanist.sweep"):
        summary = _sweep(context, watched=[watched], own=own, max_events=50)
    assert outlet.extra == summary
    assert summary["kind"] == SWEEP_EVENT_KIND
    assert summary["stranded_event_ids"] == [7, 8]
    assert "Found 2 stranded asset event(s) [7, 8]" in caplog.text


@airflow_3
def test_on_airflow_3_0_the_task_filters_the_plain_list_of_every_event_itself() -> None:
    from airflow_provider_octanist.sweep import _sweep

    context, watched, own, _, outlet = sweep_context([])
    everything = [Event(1, at(-60)), Event(2, at(5)), Event(3, STARTED + timedelta(seconds=1))]
    context["inlet_events"] = ByAsset({watched.name: everything})
    assert _sweep(context, watched=[watched], own=own, max_events=50)["stranded_event_ids"] == [2]
    assert outlet.extra is not None


@airflow_3
def test_a_dag_gets_the_sweep_task_with_its_assets_as_inlets_and_its_sweep_asset_as_outlet() -> None:
    from airflow.sdk import DAG, Asset

    from airflow_provider_octanist.sweep import lead_event_schedule, sweep_asset, sweep_stranded_events

    won, lost = Asset("octanist_lead_won"), Asset("octanist_lead_lost")
    with DAG(DAG_ID, schedule=lead_event_schedule(won, lost, dag_id=DAG_ID)) as dag:
        sweep_stranded_events()
    task = dag.get_task("sweep_stranded_events")
    assert task.inlets == [won, lost]
    assert task.outlets == [sweep_asset(DAG_ID)]
    assert sweep_asset(DAG_ID).name == f"octanist-event-sweep/{DAG_ID}"
    assert sweep_asset("other_dag") != sweep_asset(DAG_ID)


@airflow_3
def test_a_dag_not_scheduled_on_its_sweep_asset_is_refused_when_parsed() -> None:
    from airflow.sdk import DAG, Asset

    from airflow_provider_octanist.sweep import lead_event_schedule, sweep_stranded_events

    won = Asset("octanist_lead_won")
    with (
        pytest.raises(ValueError, match=r"dag_id='book_won_leads'"),
        DAG(DAG_ID, schedule=lead_event_schedule(won, dag_id="some_other_dag")),
    ):
        sweep_stranded_events()
    with pytest.raises(RuntimeError, match="inside the DAG"):
        sweep_stranded_events()


@airflow_3
def test_the_schedule_is_the_task_sdks_public_asset_any() -> None:
    import airflow.sdk
    from airflow.sdk import Asset

    from airflow_provider_octanist.sweep import lead_event_schedule, sweep_asset

    public = getattr(airflow.sdk, "AssetAny", None)
    if public is None:  # a Task SDK that does not export it: the module that defines it
        from airflow.sdk.definitions import asset

        public = asset.AssetAny
    won = Asset("octanist_lead_won")
    schedule = lead_event_schedule(won, dag_id=DAG_ID)
    assert type(schedule) is public
    assert list(schedule.objects) == [won, sweep_asset(DAG_ID)]


def test_the_module_imports_no_private_airflow_module() -> None:
    import ast
    from pathlib import Path

    import airflow_provider_octanist.sweep as sweep

    tree = ast.parse(Path(sweep.__file__).read_text(encoding="utf-8"))
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    airflow_modules = [name for name in imported if name.split(".")[0] == "airflow"]
    assert airflow_modules, "the check would not see the module's Airflow imports"
    private = [name for name in airflow_modules if any(part.startswith("_") for part in name.split("."))]
    assert private == []


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="the Airflow 2 behaviour")
def test_on_airflow_2_the_helpers_say_they_need_airflow_3() -> None:
    from airflow_provider_octanist.sweep import lead_event_schedule

    with pytest.raises(RuntimeError, match=r"needs Airflow 3\.0\+"):
        lead_event_schedule(object(), dag_id=DAG_ID)  # type: ignore[arg-type]


def test_importing_the_module_imports_no_airflow() -> None:
    code = (
        "import sys, airflow_provider_octanist.sweep; "
        "print(sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
