"""The write-back's state on its own: how a lead is stored, named and digested, and how a journal is read."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_octanist.transfers import _storage
from airflow_provider_octanist.transfers._state import (
    LEASE_SECONDS,
    StateError,
    StateInUseError,
    WriteBackState,
    row_digest,
)

WEEK = timedelta(days=7)


def memory_state() -> Any:
    return _storage.object_storage_path(f"memory://state-{uuid.uuid4().hex}/state.json")


def write_json(path: Any, document: dict[str, Any]) -> None:
    with path.fs.open(path.path, "wb") as stream:
        stream.write(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("record", "stored"),
    [
        ({}, None),
        ({"applied": ["d1"]}, "d1"),
        ({"applied": ["d1", "d2"]}, {"applied": ["d1", "d2"]}),
        ({"applied": ["d1"], "unknown": {"digest": "d2"}}, {"applied": ["d1"], "unknown": {"digest": "d2"}}),
        ({"carried": {"digest": "d3"}}, {"carried": {"digest": "d3"}}),
    ],
)
def test_a_lead_applied_once_and_owing_nothing_is_kept_as_its_digest_alone(
    record: dict[str, Any], stored: Any
) -> None:
    state = WriteBackState(memory_state(), carry_over_for=WEEK)

    state.keep("k", dict(record))

    assert state.leads.get("k") == stored
    assert state.record("k") == record
    assert state.changed == {"k"}


def test_a_row_digest_is_of_the_fields_as_sent() -> None:
    won = row_digest({"email": "a@example.com", "status": "won"})

    assert row_digest({"email": "a@example.com", "status": "WIN"}) == won
    assert row_digest({"email": "a@example.com", "status": "won", "note": "x"}) != won
    assert row_digest({"email": "b@example.com", "status": "won"}) != won
    assert len(won) == 24


def test_a_lead_key_is_keyed_by_the_salt_and_its_column_and_holds_no_value() -> None:
    one, two = (WriteBackState(memory_state(), carry_over_for=WEEK) for _ in range(2))

    key = one.key({"email": "ada@example.com"})

    assert key != one.key({"phone": "ada@example.com"})
    assert key != two.key({"email": "ada@example.com"})  # another salt
    assert key == one.key({"email": "ada@example.com"})
    assert "ada" not in key


def journal_of(target: Any, **fields: Any) -> dict[str, Any]:
    journal = {
        "format": "octanist-write-back-state",
        "version": 1,
        "run_id": "other",
        "salt": "00" * 16,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "heartbeat": time.time(),
        "released": False,
        "changes": {},
        "sending": {},
        **fields,
    }
    write_json(target.parent / f"{target.name}.journal", journal)
    return journal


def test_a_journal_with_a_fresh_heartbeat_from_a_live_process_is_another_run_holding_the_state() -> None:
    target = memory_state()
    journal_of(target)

    with pytest.raises(StateInUseError, match=r"in use by another run of this task \(run other on"):
        WriteBackState.open(target, carry_over_for=WEEK)


@pytest.mark.parametrize(
    "fields",
    [
        {"heartbeat": time.time() - LEASE_SECONDS - 5},
        {"released": True},
        {"pid": 0},  # no such process on this host
    ],
)
def test_a_dead_runs_journal_is_taken_in_and_its_notes_in_flight_become_unknown(
    fields: dict[str, Any],
) -> None:
    target = memory_state()
    applied = {"key-applied": "digest-1"}
    journal_of(
        target,
        changes=applied,
        sending={"m1": {"key": "key-sent", "digest": "digest-2", "since": "2026-03-10T00:00:00Z"}},
        **fields,
    )

    state = WriteBackState.open(target, carry_over_for=WEEK)

    assert state.leads["key-applied"] == "digest-1"
    assert state.record("key-sent")["unknown"]["digest"] == "digest-2"
    assert state.salt == "00" * 16  # the dead run's, as it had saved no state yet
    state.close()
    saved = json.loads(target.read_bytes())
    assert set(saved["leads"]) == {"key-applied", "key-sent"}
    assert not target.fs.exists((target.parent / f"{target.name}.journal").path)


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'{"format": "something else", "version": 1, "salt": "", "leads": {}}'],
)
def test_a_state_that_cannot_be_read_is_an_error_never_an_empty_state(content: bytes) -> None:
    target = memory_state()
    with target.fs.open(target.path, "wb") as stream:
        stream.write(content)

    with pytest.raises(StateError, match=r"memory://state-\w+/state.json is not a write-back state"):
        WriteBackState.open(target, carry_over_for=WEEK)
