"""
What the hooks parse: an answer is refused unparsed when it would decode into more values than any
API answer holds, so memory is bounded by what is parsed and not only by bytes. Sync and async alike.
"""

from __future__ import annotations

import tracemalloc
from typing import TYPE_CHECKING

import pytest

from airflow_provider_octanist._api.json_values import MAX_JSON_VALUES
from airflow_provider_octanist.exceptions import OctanistNotFoundError, OctanistResponseError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer
    from tests.hooks.conftest import Twin

MIB = 1024 * 1024


def test_an_answer_of_millions_of_values_is_refused_unparsed_and_not_asked_again(
    hook: Twin, octanist_server: FakeOctanistServer, connect: Callable[..., None]
) -> None:
    connect(max_retries=3)
    # 8 MiB of "{}," once decoded (8 KiB on the wire), well under the size cap: 2.8 million objects.
    octanist_server.inject("huge", decoded_bytes=8 * MIB, values=True, gzip=True)

    tracemalloc.start()
    try:
        with pytest.raises(OctanistResponseError) as caught:
            hook.get_stats()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    text = str(caught.value)
    assert f"answer to POST /stats (HTTP 200) holds more than {MAX_JSON_VALUES} JSON values" in text
    assert "it was not parsed" in text
    assert "a smaller page_size" in text
    # Parsed, those objects would take some 250 MiB; read and counted, the body a few times its size.
    assert peak < 48 * MIB, f"{peak / MIB:.0f} MiB allocated while the answer was read and refused"
    assert octanist_server.request_count("POST", "/api/stats") == 1, "a refused answer is not asked again"


def test_an_error_answer_of_millions_of_values_is_read_as_an_error_without_a_body(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    body = "[" + "{}," * MAX_JSON_VALUES + "{}]"
    octanist_server.inject("status", status=404, body=body, content_type="application/json")

    with pytest.raises(OctanistNotFoundError) as caught:
        hook.get_lead("lead_1")

    assert caught.value.message == "Octanist found nothing for GET /leads/lead_1"


def test_a_large_page_whose_strings_hold_millions_of_commas_is_parsed(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    # Commas, brackets and escaped quotes inside strings are no values: 3.6 MB of them still parse.
    note = '{"items": [' + "1, " * 12_000 + '"x\\"]'
    octanist_server.add_leads(100, note=note)

    page = hook.list_leads_page(page_size=100)

    assert len(page.items) == 100
    assert {lead["note"] for lead in page.items} == {note}
