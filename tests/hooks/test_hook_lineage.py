"""The hooks tell Airflow's hook lineage collector what they read and change, once per call."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist import lineage
from airflow_provider_octanist.exceptions import OctanistNotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.testing import FakeOctanistServer

    from .conftest import Twin


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Airflow's own collector, as a task gets it when a lineage reader (OpenLineage) is enabled."""
    from airflow.providers.common.compat.sdk import HookLineageCollector

    source = importlib.import_module(HookLineageCollector.__module__)
    collector = HookLineageCollector()
    monkeypatch.setattr(source, "get_hook_lineage_collector", lambda: collector)
    lineage._airflow_collector_getter.cache_clear()  # looked up once per process
    assert lineage.hook_lineage_collector() is collector
    yield collector
    monkeypatch.undo()
    lineage._airflow_collector_getter.cache_clear()


def reported(collector: Any, direction: str) -> list[tuple[str, int]]:
    """(asset URI, how many times reported) of each input or output the collector holds."""
    return [(info.asset.uri, info.count) for info in getattr(collector.collected_assets, direction)]


def dataset(server: FakeOctanistServer, name: str) -> str:
    return f"octanist://127.0.0.1:{server.port}/{name}"


def test_reading_a_lead_reports_the_leads_as_an_input(
    hook: Twin, collector: Any, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()

    hook.get_lead(lead["id"])

    assert reported(collector, "inputs") == [(dataset(octanist_server, "leads"), 1)]
    assert reported(collector, "outputs") == []


def test_a_listing_of_several_pages_reports_one_input(
    hook: Twin, collector: Any, octanist_server: FakeOctanistServer
) -> None:
    for _ in range(5):
        octanist_server.add_lead()

    assert len(hook.list_leads(page_size=2)) == 5

    assert reported(collector, "inputs") == [(dataset(octanist_server, "leads"), 1)]


def test_statistics_are_read_from_the_leads(
    hook: Twin, collector: Any, octanist_server: FakeOctanistServer
) -> None:
    hook.get_stats()

    assert reported(collector, "inputs") == [(dataset(octanist_server, "leads"), 1)]


def test_the_ad_spend_report_is_an_input_of_its_own(
    hook: Twin, collector: Any, octanist_server: FakeOctanistServer
) -> None:
    hook.get_ad_spend("2026-03-01", "2026-03-10", page_size=7)

    assert reported(collector, "inputs") == [(dataset(octanist_server, "ad-spend"), 1)]


def test_a_read_that_fails_reports_nothing(hook: Twin, collector: Any) -> None:
    with pytest.raises(OctanistNotFoundError):
        hook.get_lead("lead_missing")

    assert reported(collector, "inputs") == []


def test_creating_and_updating_leads_report_the_leads_as_an_output(
    sync_hook: OctanistHook, collector: Any, octanist_server: FakeOctanistServer
) -> None:
    created = sync_hook.create_lead(name="Ada", email="ada@example.com")
    sync_hook.update_lead(lead_id=created["id"], status="won", value=100)

    assert reported(collector, "outputs") == [(dataset(octanist_server, "leads"), 2)]
    assert reported(collector, "inputs") == []


def test_without_a_lineage_reader_the_hooks_report_to_nobody() -> None:
    # Airflow's default when no reader (the OpenLineage plugin) is enabled, as in this suite.
    assert lineage.hook_lineage_collector() is None
