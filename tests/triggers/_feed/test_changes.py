"""
Listing every lead changed after a cursor (``fetch_changes``) through the real hook and the fake
server, where the listing moves under the feed while it pages (hostile servers: test_hostile_feed).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._keyset.cursor import Cursor
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook
from airflow_provider_octanist.triggers._feed.changes import fetch_changes

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer

LONG_AGO = "2026-01-01T00:00:00.000Z"
"""Leads are created with this timestamp so they are older than any cursor of the tests."""


def test_paging_is_safe_while_leads_change_between_pages(server: FakeOctanistServer) -> None:
    leads = server.add_leads(250, createdAt=LONG_AGO)
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    for lead in leads:
        server.set_status(lead["id"], "qualified", value=1)
    moved_late = leads[150]["id"]  # on the second page of an offset listing
    moved_early = leads[10]["id"]  # already read on the first page

    class ChangingWhilePaging(OctanistAsyncHook):
        """The real hook, with two leads edited right after the first page was served."""

        pages = 0

        async def list_leads_page(self, page: int = 1, **filters: Any) -> Any:
            result = await super().list_leads_page(page, **filters)
            self.pages += 1
            if self.pages == 1:
                server.update_lead(moved_late, note="edited while paging")
                server.update_lead(moved_early, note="edited while paging")
            return result

    async def scenario() -> None:
        async with ChangingWhilePaging() as hook:
            changes = await fetch_changes(hook, Cursor(start))
        seen = [change.lead_id for change in changes.changes]
        assert set(seen) == {lead["id"] for lead in leads}
        assert seen.count(moved_early) == 2  # its first change and its edit, both after the start
        assert seen.count(moved_late) in (1, 2)  # met again behind the bound, never skipped
        assert [c.key for c in changes.changes] == sorted(c.key for c in changes.changes)

    asyncio.run(scenario())
