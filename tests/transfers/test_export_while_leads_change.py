"""The leads export while people edit leads: every lead that matches for the whole export is written."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.exceptions import OctanistError
from airflow_provider_octanist.testing import FakeOctanistServer
from airflow_provider_octanist.transfers.object_storage import OctanistLeadsToObjectStorageOperator

from .conftest import run

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DAY = datetime(2026, 3, 10, tzinfo=timezone.utc)


def ids_in(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def daily_export(path: Path, **kwargs: Any) -> OctanistLeadsToObjectStorageOperator:
    return OctanistLeadsToObjectStorageOperator(
        task_id="export",
        path=path.as_uri(),
        updated_gte=DAY.isoformat(),
        updated_lt=(DAY + timedelta(days=1)).isoformat(),
        **kwargs,
    )


def add_window(server: FakeOctanistServer, n: int, **fields: Any) -> list[str]:
    """``n`` leads updated (and created) one second apart inside the day of the export."""
    return [
        server.add_lead(createdAt=DAY + timedelta(seconds=i), **fields)["id"]
        for i in range(len(server.leads), len(server.leads) + n)
    ]


@pytest.fixture
def server_with_precision(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeOctanistServer]:
    """A server storing ``request.param`` (``ms``, or ``us`` printed as ``ms``), as the connection."""
    printed = None if request.param == "ms" else "ms"
    with FakeOctanistServer(timestamp_precision=request.param, printed_precision=printed) as server:
        monkeypatch.setenv("AIRFLOW_CONN_OCTANIST_DEFAULT", server.connection_json)
        yield server


def test_leads_edited_out_of_the_window_while_pages_are_read_shift_no_other_lead_out(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    window = add_window(octanist_server, 250)
    edited = window[:5]  # on the first page; edited now, they leave the day's window

    def edit() -> None:
        for lead_id in edited:
            octanist_server.update_lead(lead_id, note="called back")

    octanist_server.change_during_listing(edit, request=2)
    target = tmp_path / "day.jsonl"

    summary = run(daily_export(target))

    written = ids_in(target)
    assert sorted(written) == sorted(window)  # the 5 as they were read, and not one untouched lead lost
    assert len(written) == len(set(written))
    assert summary["rows"] == 250
    assert summary["by_status"] == {"open": 250}


def test_a_status_export_keeps_every_lead_that_stays_in_the_status_while_others_move(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    won = add_window(octanist_server, 250, status="won")
    opened = add_window(octanist_server, 3)
    leaving, entering = won[:5], opened

    def move() -> None:
        for lead_id in leaving:
            octanist_server.set_status(lead_id, "lost", loss_reason="no budget")
        for lead_id in entering:
            octanist_server.set_status(lead_id, "won", value=100)

    octanist_server.change_during_listing(move, request=2)
    target = tmp_path / "won.jsonl"

    summary = run(OctanistLeadsToObjectStorageOperator(task_id="export", path=target.as_uri(), status="won"))

    written = ids_in(target)
    assert set(won) - set(leaving) <= set(written)  # every lead won for the whole export
    assert set(entering) <= set(written)  # changed into the status: met after the bound, once
    assert len(written) == len(set(written)) == summary["rows"] == 253
    assert summary["by_status"] == {"won": 253}


def test_page_number_reading_that_a_shift_would_thin_fails_and_writes_nothing(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    window = add_window(octanist_server, 250)

    def edit() -> None:
        for lead_id in window[:5]:
            octanist_server.update_lead(lead_id, note="called back")

    octanist_server.change_during_listing(edit, page=2)
    target = tmp_path / "day.jsonl"

    with pytest.raises(OctanistError, match=r"read 245 lead\(s\) while 250 matched .* and 245 when it ended"):
        run(daily_export(target, sort="createdAt:asc"))

    assert not target.exists()


def test_page_number_reading_with_the_listing_unchanged_writes_every_lead(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    window = add_window(octanist_server, 120)
    target = tmp_path / "day.jsonl"
    summary = run(daily_export(target, sort="createdAt:desc"))
    assert ids_in(target) == window[::-1]
    assert summary["rows"] == 120


@pytest.mark.parametrize("server_with_precision", ["ms", "us"], indirect=True)
def test_more_leads_at_one_instant_than_a_page_holds_are_each_written_once(
    server_with_precision: FakeOctanistServer, tmp_path: Path
) -> None:
    server = server_with_precision
    before = add_window(server, 7)
    instant = DAY + timedelta(hours=1, microseconds=123_456)
    same = [server.add_lead(createdAt=instant)["id"] for _ in range(23)]
    after = [server.add_lead(createdAt=instant + timedelta(milliseconds=1))["id"] for _ in range(4)]
    edited = same[:2]

    def edit() -> None:  # two leads of the instant leave it (and the window) while it is read
        for lead_id in edited:
            server.update_lead(lead_id, note="called back")

    server.change_during_listing(edit, page=2)
    target = tmp_path / "day.jsonl"

    summary = run(daily_export(target, page_size=10))

    written = ids_in(target)
    assert any(r.query.get("page") == ["2"] for r in server.requests), "the instant was read by page"
    assert set(before + after + same) - set(edited) <= set(written)
    assert len(written) == len(set(written)) == summary["rows"]


def test_a_server_that_ignores_sort_stops_the_export_before_anything_is_written(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    add_window(octanist_server, 12)
    octanist_server.inject("unsorted", order="reversed", count=None, method="GET", path="/api/leads")
    target = tmp_path / "day.jsonl"
    with pytest.raises(OctanistError, match="ignored sort=updatedAt:asc"):
        run(daily_export(target, page_size=5))
    assert not target.exists()


def test_fields_without_updated_at_still_page_by_it_and_write_only_the_fields_asked(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    window = add_window(octanist_server, 12, name="Ada")
    target = tmp_path / "day.jsonl"
    run(daily_export(target, page_size=5, fields=["name"]))
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert lines == [{"id": lead_id, "name": "Ada"} for lead_id in window]
