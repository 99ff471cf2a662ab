"""A write-back with ``state_path``: only changes are sent, failures carried over, no note sent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octanist.transfers._state import StateError, StateInUseError
from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator

from .conftest import patches, report_lines, run, use_connection, write_csv, write_jsonl

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer

REPOSITORY = Path(__file__).resolve().parents[2]


def sync(path: str, state: str, **kwargs: Any) -> ObjectStorageToOctanistLeadsOperator:
    arguments = {"format": "csv", **kwargs}
    return ObjectStorageToOctanistLeadsOperator(
        task_id="write_back", path=path, state_path=state, **arguments
    )


def won_rows(leads: list[dict[str, Any]], value: int = 100) -> list[list[Any]]:
    return [[lead["email"], "won", value + i, f"signed {i}"] for i, lead in enumerate(leads)]


HEADER = ["email", "status", "value", "note"]


def notes_sent(server: FakeOctanistServer) -> dict[str, int]:
    """How many PATCHes carrying a note each lead key received."""
    counts: dict[str, int] = {}
    for body in patches(server):
        if body is not None and "note" in body:  # None: a request cut short when its run was killed
            key = body.get("leadId") or body.get("email") or body.get("phone")
            counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("where", ["file", "memory"])
def test_a_second_run_with_the_same_rows_sends_nothing(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path, where: str
) -> None:
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(30)]
    path = write_csv(tmp_path / "deals.csv", HEADER, won_rows(leads))
    state = (tmp_path / "state.json").as_uri() if where == "file" else f"memory://{tmp_path.name}/state.json"

    first = run(sync(path, state))
    second = run(sync(path, state))

    assert (first["updated"], first["unchanged"]) == (30, 0)
    assert (second["updated"], second["unchanged"], second["rows"]) == (0, 30, 30)
    assert octanist_server.request_count("PATCH") == 30
    assert set(notes_sent(octanist_server).values()) == {1}


def test_only_the_changed_rows_are_sent(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(20)]
    state = (tmp_path / "state.json").as_uri()
    rows = won_rows(leads)
    run(sync(write_csv(tmp_path / "day1.csv", HEADER, rows), state))
    octanist_server.clear_requests()
    rows[3][2], rows[11][3] = 999, "signed again, revised"  # a new value; a new note

    summary = run(sync(write_csv(tmp_path / "day2.csv", HEADER, rows), state))

    assert (summary["updated"], summary["unchanged"]) == (2, 18)
    assert sorted(body["email"] for body in patches(octanist_server)) == ["n11@example.com", "n3@example.com"]


def test_a_status_spelt_differently_is_the_same_row(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    lead = octanist_server.add_lead(email="ada@example.com")
    state = (tmp_path / "state.json").as_uri()
    run(sync(write_csv(tmp_path / "a.csv", ["email", "status"], [[lead["email"], "won"]]), state))

    summary = run(sync(write_csv(tmp_path / "b.csv", ["email", "status"], [[lead["email"], "WIN"]]), state))

    assert summary["unchanged"] == 1
    assert octanist_server.request_count("PATCH") == 1


def test_rows_not_found_today_are_applied_tomorrow_from_the_state_alone(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    known = octanist_server.add_lead(email="known@example.com")
    state = (tmp_path / "state.json").as_uri()
    today = [[known["email"], "won", 10, ""], ["later@example.com", "won", 20, "signed late"]]
    first = run(sync(write_csv(tmp_path / "day1.csv", HEADER, today), state, max_failed_rows=1))
    assert (first["updated"], first["not_found"]) == (1, 1)
    later = octanist_server.add_lead(email="later@example.com")
    report = tmp_path / "report.jsonl"

    tomorrow = run(sync(write_csv(tmp_path / "day2.csv", HEADER, []), state, report_path=report.as_uri()))

    assert (tomorrow["rows"], tomorrow["carried_over"], tomorrow["updated"]) == (0, 1, 1)
    lead = octanist_server.lead(later["id"])
    assert (lead["status"], lead["note"]) == ("won", "signed late")
    [line] = [json.loads(text) for text in report.read_text().splitlines()]
    assert (line["row"], line["outcome"], line["lead"]) == (None, "updated", {"email": "later@example.com"})
    assert line["carried_since"]
    third = run(sync(write_csv(tmp_path / "day3.csv", HEADER, []), state))
    assert third["carried_over"] == 0  # applied: no longer carried


def test_a_row_rate_limited_past_its_retries_is_carried_with_that_reason_and_applied_later(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server)
    lead = octanist_server.add_lead(email="ada@example.com")
    state = tmp_path / "state.json"
    octanist_server.inject("status", status=429, count=None, method="PATCH")
    first = run(
        sync(
            write_csv(tmp_path / "d1.csv", HEADER, [[lead["email"], "won", 10, "Signed"]]),
            state.as_uri(),
            max_failed_rows=1,
        )
    )
    [record] = json.loads(state.read_text())["leads"].values()
    octanist_server.clear_faults()

    second = run(sync(write_csv(tmp_path / "d2.csv", HEADER, []), state.as_uri()))

    assert (first["failed"], first["unknown"], record["carried"]["reason"]) == (1, 0, "rate_limited")
    assert (second["carried_over"], second["updated"]) == (1, 1)
    assert octanist_server.lead(lead["id"])["note"] == "Signed"


def test_a_row_in_todays_input_replaces_the_one_carried_for_its_lead(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    state = (tmp_path / "state.json").as_uri()
    yesterday = [["late@example.com", "won", 20, "first"]]
    run(sync(write_csv(tmp_path / "day1.csv", HEADER, yesterday), state, max_failed_rows=1))
    octanist_server.add_lead(email="late@example.com")

    summary = run(
        sync(write_csv(tmp_path / "day2.csv", HEADER, [["late@example.com", "lost", "", ""]]), state)
    )

    assert (summary["rows"], summary["carried_over"], summary["updated"]) == (1, 0, 1)
    assert patches(octanist_server)[-1] == {"email": "late@example.com", "status": "lost"}


def test_rows_not_sent_when_the_key_was_revoked_are_sent_by_the_next_run(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(30)]
    state = (tmp_path / "state.json").as_uri()
    octanist_server.revoke_key(after=10)
    with pytest.raises(AirflowFailException, match="its state sends only the rows not applied"):
        run(sync(write_csv(tmp_path / "d1.csv", HEADER, won_rows(leads)), state))
    octanist_server.restore_key()
    applied = {lead["email"] for lead in octanist_server.leads if lead["note"]}
    octanist_server.clear_requests()

    summary = run(sync(write_csv(tmp_path / "d2.csv", HEADER, []), state))

    assert summary["carried_over"] == summary["updated"] == 30 - len(applied) == 20
    assert notes_sent(octanist_server) == {lead["email"]: 1 for lead in leads if lead["email"] not in applied}


def test_a_row_carried_longer_than_carry_over_for_is_given_up(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    run(
        sync(
            write_csv(tmp_path / "d1.csv", HEADER, [["gone@example.com", "won", 1, ""]]),
            state_file.as_uri(),
            max_failed_rows=1,
        )
    )
    document = json.loads(state_file.read_text())
    [record] = document["leads"].values()
    eight_days_ago = datetime.now(timezone.utc) - timedelta(days=8)
    record["carried"]["since"] = eight_days_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    state_file.write_text(json.dumps(document))
    octanist_server.clear_requests()

    summary = run(sync(write_csv(tmp_path / "d2.csv", HEADER, []), state_file.as_uri(), max_failed_rows=1))

    assert (summary["carried_over"], summary["given_up"]) == (1, 1)
    assert octanist_server.request_count("PATCH") == 0
    assert json.loads(state_file.read_text())["leads"] == {}


def test_a_note_under_a_read_timeout_is_sent_once_across_three_runs(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server, timeout=0.2)
    lead = octanist_server.add_lead(email="ada@example.com")
    octanist_server.inject("delay", seconds=1, method="PATCH")
    path = write_csv(tmp_path / "d.csv", HEADER, [[lead["email"], "won", 10, "Signed"]])
    state, report = (tmp_path / "state.json").as_uri(), tmp_path / "report.jsonl"

    runs = [run(sync(path, state, max_failed_rows=1, report_path=report.as_uri())) for _ in range(3)]

    assert [summary["unknown"] for summary in runs] == [1, 1, 1]
    assert octanist_server.request_count("PATCH") == 1
    [line] = report_lines(report)
    assert line["outcome"] == "unknown"
    assert "Check the lead (email ada@example.com) in Octanist" in line["error"]["message"]
    assert "resolve_unknown={'ada@example.com': 'applied'}" in line["error"]["message"]
    with pytest.raises(AirflowFailException, match="unknown: not sent: a note for this lead"):
        run(sync(path, state))


@pytest.mark.parametrize(("verdict", "sent"), [("applied", 0), ("not_applied", 1)])
def test_a_note_of_unknown_outcome_is_resolved_by_the_user(
    octanist_server: FakeOctanistServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    verdict: str,
    sent: int,
) -> None:
    use_connection(monkeypatch, octanist_server, timeout=0.2)
    lead = octanist_server.add_lead(email="ada@example.com")
    octanist_server.inject("delay", seconds=1, method="PATCH")
    path = write_csv(tmp_path / "d.csv", HEADER, [[lead["email"], "won", 10, "Signed"]])
    state = (tmp_path / "state.json").as_uri()
    run(sync(path, state, max_failed_rows=1))
    octanist_server.clear_requests()

    summary = run(sync(path, state, resolve_unknown={"ada@example.com": verdict}))
    again = run(sync(path, state))

    assert octanist_server.request_count("PATCH") == sent
    assert (summary["unknown"], summary["updated"] + summary["unchanged"]) == (0, 1)
    assert again["unchanged"] == 1


SYNC_IN_A_PROCESS = """
import os, sys
os.environ["AIRFLOW_CONN_OCTANIST_DEFAULT"] = sys.argv[1]
from airflow_provider_octanist.transfers.object_storage import ObjectStorageToOctanistLeadsOperator
ObjectStorageToOctanistLeadsOperator(
    task_id="write_back", path=sys.argv[2], format="csv", state_path=sys.argv[3],
    max_concurrency=int(sys.argv[4]),
).execute({})
"""
"""A sync in a process of its own, as another worker runs it: conn JSON, path, state, concurrency."""


def sync_in_a_process(path: str, state: str, max_concurrency: int) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]),
    }
    connection = os.environ["AIRFLOW_CONN_OCTANIST_DEFAULT"]
    return subprocess.Popen(
        [sys.executable, "-c", SYNC_IN_A_PROCESS, connection, path, state, str(max_concurrency)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_sync_killed_midway_and_run_again_gives_every_lead_its_note_once(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_connection(monkeypatch, octanist_server)
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(300)]
    path = write_csv(tmp_path / "deals.csv", HEADER, won_rows(leads))
    state = (tmp_path / "state.json").as_uri()
    octanist_server.inject("delay", seconds=0.03, method="PATCH", count=None)  # about 2 s in all
    child = sync_in_a_process(path, state, max_concurrency=4)
    try:
        deadline = time.monotonic() + 60
        while octanist_server.request_count("PATCH") < 60:
            assert child.poll() is None, f"the sync ended before it was killed: {child.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the sync sent fewer than 60 updates in 60 s"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert octanist_server.request_count("PATCH") < 300, "the sync finished before it was killed"
    octanist_server.clear_faults()

    summary = run(sync(path, state, max_failed_rows=4))

    sent = notes_sent(octanist_server)
    assert set(sent.values()) == {1}  # no lead's note twice
    never = [lead["email"] for lead in leads if lead["email"] not in sent]
    assert len(never) <= summary["unknown"] <= 4  # at most the updates in flight when it was killed
    assert summary["updated"] + summary["unchanged"] + summary["unknown"] == 300
    assert summary["unchanged"] >= 60 - 4  # what the killed run applied is not sent again


def test_a_corrupt_state_is_an_error_naming_its_path(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    lead = octanist_server.add_lead(email="ada@example.com")
    path = write_csv(tmp_path / "d.csv", HEADER, [[lead["email"], "won", 10, "Signed"]])
    state = tmp_path / "state.json"
    state.write_text('{"format": "octanist-write-back-state", "version": 1, "salt": "ab", "lea')

    with pytest.raises(StateError, match=rf"The write-back state file://{state} is not a write-back state"):
        run(sync(path, state.as_uri()))

    assert octanist_server.request_count() == 0


def test_a_second_run_while_one_holds_the_state_fails_and_sends_nothing(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(5)]
    path = write_csv(tmp_path / "d.csv", HEADER, won_rows(leads))
    state = (tmp_path / "state.json").as_uri()
    octanist_server.inject("delay", seconds=3, method="PATCH")  # the first run's first update waits
    first = sync_in_a_process(path, state, max_concurrency=1)  # another worker's run of the task
    try:
        deadline = time.monotonic() + 60
        while octanist_server.request_count("PATCH") < 1:
            assert first.poll() is None, f"the first run ended early: {first.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the first run sent nothing in 60 s"
            time.sleep(0.005)

        with pytest.raises(
            StateInUseError, match=r"is in use by another run of this task .* this one sent nothing"
        ):
            run(sync(path, state))
        assert first.wait(timeout=60) == 0, first.stderr.read()  # type: ignore[union-attr]
    finally:
        first.kill()
        first.wait(timeout=30)

    assert octanist_server.request_count("PATCH") == 5
    assert run(sync(path, state))["unchanged"] == 5


def test_the_state_holds_no_email_or_note_but_for_the_rows_carried(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    lead = octanist_server.add_lead(email="ada@example.com", phone="+31612345678")
    state = tmp_path / "state.json"
    rows = [
        {"email": "ada@example.com", "status": "won", "note": "Signed"},
        {"phone": "+31600000000", "status": "won"},
    ]

    run(sync(write_jsonl(tmp_path / "d.jsonl", rows), state.as_uri(), format="jsonl", max_failed_rows=1))

    text = state.read_text()
    assert "ada@example.com" not in text
    assert "Signed" not in text
    assert lead["id"] not in text
    document = json.loads(text)
    [carried] = [record["carried"] for record in document["leads"].values() if isinstance(record, dict)]
    assert carried["lead"] == {"phone": "+31600000000"}
    assert carried["reason"] == "not_found"
    assert not (tmp_path / "state.json.journal").exists()  # let go of at the end


def test_max_failed_ratio_lets_a_share_of_the_rows_go_wrong(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(99)]
    rows = [[lead["email"], "won"] for lead in leads] + [["gone@example.com", "won"]]
    path = write_csv(tmp_path / "d.csv", ["email", "status"], rows)

    assert (
        run(
            ObjectStorageToOctanistLeadsOperator(task_id="t", path=path, format="csv", max_failed_ratio=0.01)
        )["not_found"]
        == 1
    )
    two = write_csv(tmp_path / "e.csv", ["email", "status"], [*rows, ["gone2@example.com", "won"]])
    with pytest.raises(
        AirflowFailException, match=r"more than max_failed_rows=0 and max_failed_ratio=0.01 \(1 of 101\)"
    ):
        run(ObjectStorageToOctanistLeadsOperator(task_id="t", path=two, format="csv", max_failed_ratio=0.01))


def test_the_summary_and_the_last_log_line_say_how_the_rows_add_up(
    octanist_server: FakeOctanistServer,
    octanist_conn: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lead = octanist_server.add_lead(email="ada@example.com")
    state = (tmp_path / "state.json").as_uri()
    rows = [[lead["email"], "won"], ["gone@example.com", "won"], ["", "won"]]
    run(sync(write_csv(tmp_path / "d1.csv", ["email", "status"], rows), state, max_failed_rows=2))
    octanist_server.add_lead(email="gone@example.com")

    capsys.readouterr()
    summary = run(sync(write_csv(tmp_path / "d2.csv", ["email", "status"], rows[:1]), state))

    expected = (
        "rows + carried_over = updated + unchanged + not_found + invalid + failed + unknown: "
        "1 + 1 = 1 + 1 + 0 + 0 + 0 + 0 (adds up)"
    )
    assert summary["reconciliation"] == expected
    captured = capsys.readouterr()
    last = (captured.out + captured.err).strip().splitlines()[-1]  # where the task log goes here
    assert expected[:1].upper() + expected[1:] + "." in last


def test_a_dry_run_reads_the_state_and_never_writes_it(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    leads = [octanist_server.add_lead(email=f"n{i}@example.com") for i in range(3)]
    state = tmp_path / "state.json"
    rows = won_rows(leads)
    run(sync(write_csv(tmp_path / "d1.csv", HEADER, rows), state.as_uri()))
    saved = state.read_bytes()
    rows[0][2] = 5

    summary = run(sync(write_csv(tmp_path / "d2.csv", HEADER, rows), state.as_uri(), dry_run=True))

    assert (summary["valid"], summary["unchanged"]) == (1, 2)
    assert state.read_bytes() == saved
    assert octanist_server.request_count("PATCH") == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_failed_ratio": 2}, "max_failed_ratio must be a number from 0 to 1"),
        ({"carry_over_for": 7}, "carry_over_for must be a positive timedelta"),
        ({"state_path": "s", "resolve_unknown": {"a@b.c": "yes"}}, "resolve_unknown maps a lead's id"),
        ({"resolve_unknown": {"a@b.c": "applied"}}, "resolve_unknown needs state_path"),
        ({"state_path": ""}, r"path must be a URL such as"),
    ],
)
def test_bad_state_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ObjectStorageToOctanistLeadsOperator(task_id="t", path="file:///tmp/rows.csv", **kwargs)
