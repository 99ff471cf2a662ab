"""The write-back's sender: a window of updates in flight, halved on 429, widened as updates go through."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.transfers._sender import Sender, Window

from .conftest import from_csv, run, use_connection, write_csv

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer


# -- the window, alone: additive increase, multiplicative decrease ----------------------------------

# Each step is "429" (Octanist answered 429) or "ok" (an update went through); the state after the
# steps is (size, narrowest, rate_limited).
WINDOW_STEPS = [
    ("untouched", 8, [], (8.0, 8, 0)),
    ("a first 429 always halves", 8, ["429"], (4.0, 4, 1)),
    ("the 429s of one burst are one cut", 8, ["429", "429", "429"], (4.0, 4, 3)),
    ("a 429 before a round has gone through cuts nothing", 8, ["429", *["ok"] * 5, "429"], (5.123864, 4, 2)),
    ("a 429 after a whole round cuts again", 8, ["429", *["ok"] * 6, "429"], (2.659515, 2, 2)),
    ("never below one", 1, ["429", "ok", "429"], (1.0, 1, 2)),
    ("one round of updates widens by about one", 8, ["429", *["ok"] * 4], (4.920638, 4, 1)),
    ("widening stops at the ceiling", 4, ["ok"] * 5, (4.0, 4, 0)),
]


@pytest.mark.parametrize(
    ("ceiling", "steps", "expected"),
    [case[1:] for case in WINDOW_STEPS],
    ids=[case[0] for case in WINDOW_STEPS],
)
def test_the_window_after_each_sequence_of_answers(
    ceiling: int, steps: list[str], expected: tuple[float, int, int]
) -> None:
    window = Window(ceiling)
    for step in steps:
        if step == "429":
            window.rate_limited_answer()
        else:
            window.went_through()

    assert (round(window.size, 6), window.narrowest, window.rate_limited) == expected


@pytest.mark.parametrize(("size", "room"), [(8.0, 8), (4.75, 4), (1.0, 1), (0.5, 1)])
def test_the_room_in_the_window_is_its_whole_size_and_at_least_one(size: float, room: int) -> None:
    window = Window(8)
    window.size = size

    assert window.room == room


# -- sending ------------------------------------------------------------------------------------


def test_updates_share_a_pool_of_at_most_max_concurrency_connections(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = octanist_server.add_leads(120)
    octanist_server.latency = 0.01  # the updates overlap
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [[lead["id"], "won"] for lead in leads])

    summary = run(from_csv(path, max_concurrency=12))

    assert summary["updated"] == 120
    assert all(octanist_server.lead(lead["id"])["status"] == "won" for lead in leads)
    assert 1 < octanist_server.connections_opened <= 12


def test_the_connection_is_read_once_in_the_tasks_own_thread_before_the_updates_go_out(
    octanist_server: FakeOctanistServer, octanist_conn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Airflow 3.0's task runner answers one connection request at a time: sending threads that each
    # looked the connection up at once broke `airflow dags test` (and could mix answers in a worker).
    import threading

    from airflow_provider_octanist.hooks.octanist import OctanistHook

    lookups: list[str] = []
    sessions: list[Any] = []
    real_lookup, real_session = OctanistHook.get_connection, OctanistHook.get_conn

    def spy_lookup(cls: Any, conn_id: str) -> Any:
        lookups.append(threading.current_thread().name)
        return real_lookup(conn_id)

    def spy_session(self: OctanistHook) -> Any:
        session = real_session(self)
        if all(session is not seen for seen in sessions):
            sessions.append(session)
        return session

    monkeypatch.setattr(OctanistHook, "get_connection", classmethod(spy_lookup))
    monkeypatch.setattr(OctanistHook, "get_conn", spy_session)
    leads = octanist_server.add_leads(40)
    octanist_server.latency = 0.01
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [[lead["id"], "won"] for lead in leads])

    summary = run(from_csv(path, max_concurrency=8))

    assert summary["updated"] == 40
    assert lookups == [threading.current_thread().name]
    assert len(sessions) == 1


def test_a_burst_of_429s_narrows_the_window_then_it_recovers(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    use_connection(monkeypatch, octanist_server, retry_backoff=0.001, max_retries=10)
    leads = octanist_server.add_leads(100)
    octanist_server.inject("status", status=429, retry_after=0, count=12, method="PATCH")
    outcomes: list[Any] = []
    items = [
        (n, {"id": lead["id"]}, {"lead_id": lead["id"], "status": "won"}) for n, lead in enumerate(leads, 1)
    ]

    with OctanistHook(pool_size=8) as hook:
        sender = Sender(hook, 8)
        sender.run(items, outcomes.append)

    assert [outcome.outcome for outcome in outcomes] == ["updated"] * 100
    assert sender.rate_limited == 12
    assert sender.narrowest <= 4
    assert sender.window == 8.0
    assert octanist_server.request_count("PATCH") == 112


def test_the_operator_counts_the_429s_it_met(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    lead = octanist_server.add_lead()
    octanist_server.inject("status", status=429, retry_after=0, count=2, method="PATCH")
    path = write_csv(tmp_path / "d.csv", ["id", "status"], [[lead["id"], "won"]])

    summary = run(from_csv(path))

    assert (summary["updated"], summary["rate_limited"]) == (1, 2)
