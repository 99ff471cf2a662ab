"""
Pages that repeat most of their leads while claiming ``hasMore``.

``list_leads``, ``iter_leads`` (both hooks) and the export yield each lead once, and stop with a
clear error within a few requests when pages keep repeating leads already listed; a page that
repeats a lead or two because the listing shifted stays normal.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist._api.paging import MAX_REPEATING_PAGES
from airflow_provider_octanist.exceptions import OctanistResponseError
from airflow_provider_octanist.transfers.object_storage import OctanistLeadsToObjectStorageOperator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from airflow_provider_octanist.testing import FakeOctanistServer
    from tests.hooks.conftest import Twin


def test_pages_repeating_most_of_their_leads_stop_with_a_clear_error(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(800)
    # Three of four leads on every later page are page 1's, and hasMore never ends.
    octanist_server.inject("repeat_pages", count=None, method="GET", path="/api/leads", fresh=1)

    with pytest.raises(OctanistResponseError) as caught:
        hook.list_leads(page_size=4)

    assert caught.value.message == (
        "Octanist kept repeating leads for GET /leads: pages 2 to 4 each repeated most of their "
        "leads from earlier pages while claiming hasMore"
    )
    assert "narrow the filters" in str(caught.value)
    assert octanist_server.request_count("GET", "/api/leads") == 1 + MAX_REPEATING_PAGES


def test_iter_leads_yields_each_lead_once_before_it_stops(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    octanist_server.add_leads(800)
    octanist_server.inject("repeat_pages", count=None, method="GET", path="/api/leads", fresh=1)
    yielded: list[str] = []

    async def drain(leads: AsyncIterator[dict[str, Any]]) -> None:
        async for lead in leads:
            yielded.append(lead["id"])

    def walk() -> None:
        leads = hook.hook.iter_leads(page_size=4)
        if hook.loop is None:
            yielded.extend(lead["id"] for lead in leads)
        else:
            hook.loop.run_until_complete(drain(leads))

    with pytest.raises(OctanistResponseError, match="kept repeating leads"):
        walk()

    assert len(yielded) == len(set(yielded)) == 4 + 1 + 1, "page 1, then the one new lead of pages 2 and 3"


def test_a_page_repeating_a_lead_of_a_shifted_listing_lists_it_once(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    leads = octanist_server.add_leads(10, createdAt="2026-01-01T00:00:00.000Z")
    # A lead created while page 2 is asked for lands first (createdAt:desc): page 2 repeats
    # page 1's last lead, the listing shifted by one.
    octanist_server.change_during_listing(lambda: octanist_server.add_lead(name="new"), page=2)

    listed = hook.list_leads(page_size=4)

    ids = [lead["id"] for lead in listed]
    assert len(ids) == len(set(ids)), "each lead once"
    assert set(ids) >= {lead["id"] for lead in leads}


def test_the_export_writes_each_lead_once_and_nothing_when_pages_keep_repeating(
    octanist_server: FakeOctanistServer, octanist_conn: str, tmp_path: Path
) -> None:
    octanist_server.add_leads(800)
    octanist_server.inject("repeat_pages", count=None, method="GET", path="/api/leads", fresh=1)
    target = tmp_path / "leads.jsonl"
    # Another sort than updatedAt:asc reads by page number, where pages can repeat.
    by_page = OctanistLeadsToObjectStorageOperator(
        task_id="export", path=f"file://{target}", page_size=4, sort="createdAt:asc"
    )

    with pytest.raises(OctanistResponseError, match="kept repeating leads"):
        by_page.execute({})
    assert not target.exists(), "a failed export leaves nothing at path"
    count = 1  # the export counts the matching leads first
    assert octanist_server.request_count("GET", "/api/leads") == count + 1 + MAX_REPEATING_PAGES

    octanist_server.clear_faults()
    octanist_server.change_during_listing(lambda: octanist_server.add_lead(name="new"), request=2)
    export = OctanistLeadsToObjectStorageOperator(task_id="export", path=f"file://{target}", page_size=4)
    export.execute({})  # by updatedAt (the default): a lead created meanwhile is read once
    written = [json.loads(line)["id"] for line in target.read_text().splitlines()]
    assert len(written) == len(set(written)) == 801
