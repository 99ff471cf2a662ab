"""The one thread that cuts sync requests off at their deadlines (``hooks/_sync_body.py``)."""

from __future__ import annotations

import threading
from time import monotonic

from airflow_provider_octanist.hooks._sync_body import _PRUNE_AT, _Watchdog


def test_due_alarms_run_in_deadline_order_and_a_cancelled_one_never_runs() -> None:
    watchdog, ran, done = _Watchdog(), [], threading.Event()
    now = monotonic()
    watchdog.cancel(watchdog.call_at(now + 0.2, lambda: ran.append("cancelled")))
    watchdog.call_at(now + 0.3, lambda: ran.append("second"))
    watchdog.call_at(now, lambda: ran.append("first"))
    watchdog.call_at(now + 0.4, done.set)

    assert done.wait(10), "the last alarm did not run within 10 s"
    assert ran == ["first", "second"]


def test_cancelled_alarms_do_not_pile_up() -> None:
    watchdog = _Watchdog()
    far = monotonic() + 3600
    for _ in range(5 * _PRUNE_AT):
        watchdog.cancel(watchdog.call_at(far, lambda: None))
    assert len(watchdog._alarms) <= _PRUNE_AT
