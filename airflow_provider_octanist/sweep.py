"""
Release asset events that Airflow 3.0-3.3 left behind, so no won lead waits for an unrelated later win.

Why: a run consumes only the events stored up to the moment the scheduler queued it (the
``created_at`` of the asset-DAG run queue row). An event stored while that row exists, because the
scheduler was stopped or slow or the DAG was at ``max_active_runs``, is consumed by no run until
some *later* event queues another one, which may be days away (apache/airflow#56050, #54659;
reworked upstream in #70972, which no released Airflow has).

How: the DAG is scheduled on its lead asset(s) *or* a sweep asset of its own
(:func:`lead_event_schedule`), and each run has one extra task (:func:`sweep_stranded_events`)
that reads the watched assets' events stored between the moment the run was queued and the moment
it started. A trigger event in that window that no run of this DAG consumed was stranded. If
there is one, the task logs what it found and succeeds, which emits one event on the DAG's sweep
asset: that queues one run, and a run consumes every earlier unconsumed event of all the DAG's
assets. If there is none, the task is skipped, and a skipped task emits no event. So:

- the steady state costs no extra run (one short task per run);
- a stranded batch costs at most one extra run, whatever its size;
- a queued run that is coming anyway absorbs the sweep event (the scheduler takes all queue rows
  of a DAG together), so it is not an extra run either;
- other DAGs scheduled on the same lead asset are never triggered: the sweep asset is per DAG;
- on an Airflow whose scheduler no longer strands events, the task always skips.

Use it with two lines in the DAG::

    @dag(dag_id="book_won_leads", schedule=lead_event_schedule(lead_won, dag_id="book_won_leads"))
    def book_won_leads():
        sweep_stranded_events()
        ...

Airflow 3 only (asset watchers and the Task SDK's ``inlet_events``). On Airflow 2 this module still
imports (standard library only at import time, like every module DAG files import) but both
helpers raise an error that says so.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from airflow.sdk import Asset, AssetAny

__all__ = [
    "SWEEP_ASSET_PREFIX",
    "SWEEP_EVENT_KIND",
    "lead_event_schedule",
    "stranded_events",
    "sweep_asset",
    "sweep_stranded_events",
]

SWEEP_ASSET_PREFIX = "octanist-event-sweep/"
"""Names of sweep assets: this prefix plus the DAG id, so each DAG's sweep triggers that DAG only."""

SWEEP_EVENT_KIND = "octanist.event_sweep"
"""The ``kind`` in the ``extra`` of a sweep event; :func:`~.events.leads_from_asset_events` skips it."""

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 1000
"""How many events of each watched asset one sweep reads at most (the window is seconds long).

Airflow 3.1+ reads only the run's window (``inlet_events[asset].after().before().limit()``);
Airflow 3.0's ``inlet_events[asset]`` is the list of every event of the asset, filtered here."""


def sweep_asset(dag_id: str) -> Asset:
    """The sweep asset of DAG ``dag_id``: only that DAG is scheduled on it, nothing else writes it."""
    _require_airflow_3("sweep_asset()")
    from airflow.sdk import Asset

    return Asset(name=f"{SWEEP_ASSET_PREFIX}{dag_id}", group="octanist-event-sweep")


def lead_event_schedule(*assets: Asset, dag_id: str) -> AssetAny:
    """
    The ``schedule`` of a DAG that consumes lead events: any of ``assets``, or the DAG's sweep asset.

    :param assets: the watched asset(s), e.g. the asset whose watcher is an
        :class:`~airflow_provider_octanist.triggers.octanist.OctanistLeadEventTrigger`.
    :param dag_id: the id of the DAG this schedule is for (its sweep asset is named after it).
    :return: ``assets[0] | ... | sweep_asset(dag_id)``, to pass as ``schedule=``.
    :raises RuntimeError: on Airflow 2, which has no event-driven scheduling.
    """
    _require_airflow_3("lead_event_schedule()")
    try:
        from airflow.sdk import AssetAny
    except ImportError:  # Task SDK releases that do not export it yet
        from airflow.sdk.definitions.asset import AssetAny

    if not assets:
        raise ValueError("lead_event_schedule() needs at least one asset to watch.")
    if not dag_id or not isinstance(dag_id, str):
        raise ValueError(f"lead_event_schedule() needs the DAG's dag_id, got {dag_id!r}.")
    return AssetAny(*assets, sweep_asset(dag_id))


def sweep_stranded_events(
    *, task_id: str = "sweep_stranded_events", max_events: int = DEFAULT_MAX_EVENTS
) -> Any:
    """
    Add the sweep task to the DAG being defined; call it inside the DAG, with no upstream or downstream.

    The DAG must be scheduled with :func:`lead_event_schedule` (checked here, when the DAG file is
    parsed). The task reads the events of every other asset of the schedule (its ``inlets``) and
    emits on the DAG's sweep asset (its ``outlets``) only when it found stranded events.

    :param task_id: the task's id.
    :param max_events: the most events read per watched asset and run.
    :return: the task's ``XComArg``.
    :raises RuntimeError: outside a DAG, or on Airflow 2.
    :raises ValueError: when the DAG's schedule does not include its sweep asset.
    """
    _require_airflow_3("sweep_stranded_events()")
    from airflow.sdk import task

    watched: list[Asset] = []
    own: list[Asset] = []

    def sweep(**context: Any) -> dict[str, Any]:
        return _sweep(context, watched=watched, own=own[0], max_events=max_events)

    # Airflow has no public name for "the DAG being defined"; a task created here is added to it,
    # so the task itself says which DAG that is, and its inlets and outlets are filled in after.
    output = task(task_id=task_id)(sweep)()
    operator = output.operator
    if not operator.has_dag():
        raise RuntimeError(
            "sweep_stranded_events() adds a task to a DAG: call it inside the DAG's definition."
        )
    dag = operator.dag
    own.append(sweep_asset(dag.dag_id))
    scheduled = _assets_in(dag.schedule)
    if own[0] not in scheduled:
        raise ValueError(
            f"DAG {dag.dag_id!r} is not scheduled on its sweep asset {own[0].name!r}, so a sweep could "
            f"not start a run. Use schedule=lead_event_schedule(<lead asset>, dag_id={dag.dag_id!r})."
        )
    watched.extend(asset for asset in scheduled if asset != own[0])
    operator.inlets = list(watched)
    operator.outlets = list(own)
    return output


def _sweep(context: Any, *, watched: Sequence[Asset], own: Asset, max_events: int) -> dict[str, Any]:
    """The sweep task's body: skip, or describe the stranded events in the sweep event's extra."""
    from airflow.providers.common.compat.sdk import AirflowSkipException

    dag_run = context["dag_run"]
    queued, started = dag_run.run_after, dag_run.start_date or dag_run.run_after
    found: list[Any] = []
    for asset in watched:
        accessor = context["inlet_events"][asset]
        if hasattr(accessor, "after"):  # Task SDK 1.1+ (Airflow 3.1+): read the window alone
            events = accessor.after(queued.isoformat()).before(started.isoformat()).limit(max_events)
        else:  # Airflow 3.0 hands over every event of the asset; the window is filtered below
            events = accessor
        stranded = stranded_events(events, dag_id=dag_run.dag_id, after=queued, until=started)
        if hasattr(accessor, "after") and len(events) >= max_events:
            log.warning(
                "Read only the first %d events of asset %r stored while run %s was queued.",
                max_events,
                asset.name,
                dag_run.run_id,
            )
        found.extend(stranded)
    if not found:
        raise AirflowSkipException(
            f"No stranded events: every trigger event stored before this run started was consumed by a run "
            f"of {dag_run.dag_id!r} or is queued for one."
        )
    summary = {
        "kind": SWEEP_EVENT_KIND,
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "stranded_event_ids": [event.id for event in found],
    }
    log.info(
        "Found %d stranded asset event(s) %s stored between %s and %s that no run of %r consumed; "
        "emitting one event on %r so the next run picks them up.",
        len(found),
        summary["stranded_event_ids"],
        queued.isoformat(),
        started.isoformat(),
        dag_run.dag_id,
        own.name,
    )
    context["outlet_events"][own].extra = summary
    return summary


def stranded_events(events: Iterable[Any], *, dag_id: str, after: datetime, until: datetime) -> list[Any]:
    """
    The trigger events among ``events`` that no run of ``dag_id`` consumed, stored after ``after`` and
    no later than ``until``.

    ``after`` is the run's ``run_after`` (the moment it was queued): an event stored until then is
    in the run's own window, so it was consumed by this run or an earlier one, or it is older than
    the DAG's schedule and no run will ever take it; sweeping it would only repeat the sweep every
    run. ``until`` is the run's start: what was stored later is the next run's business.

    :param events: asset events as the Task SDK returns them (``timestamp``, ``extra``,
        ``created_dagruns``).
    """
    return [
        event
        for event in events
        if isinstance(event.extra, dict)
        and event.extra.get("from_trigger")
        and after < event.timestamp <= until
        and not any(run.dag_id == dag_id for run in event.created_dagruns)
    ]


def _assets_in(schedule: Any) -> list[Asset]:
    """The assets a DAG's ``schedule`` names, at any depth of ``|``/``&`` conditions and lists."""
    from airflow.sdk import Asset

    if isinstance(schedule, Asset):
        return [schedule]
    members = getattr(schedule, "objects", schedule)
    if isinstance(members, (list, tuple, set, frozenset)):
        return [asset for member in members for asset in _assets_in(member)]
    return []


def _require_airflow_3(what: str) -> None:
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if not AIRFLOW_V_3_0_PLUS:
        raise RuntimeError(
            f"{what} needs Airflow 3.0+ (asset watchers and the Task SDK's inlet_events); "
            "Airflow 2 has no event-driven scheduling."
        )
