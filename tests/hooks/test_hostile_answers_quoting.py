"""
What the hooks quote: every text a server supplies is capped wherever an error or a page's note
quotes it, however long the server made it. Sync and async alike.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist.exceptions import OctanistResponseError, OctanistValidationError

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer
    from tests.hooks.conftest import Twin

HUGE = 1_000_000
"""Characters of a server's text: a megabyte, which no error or log line should carry."""


def _assert_short(*texts: str) -> None:
    for text in texts:
        assert len(text) < 1_500, f"{len(text)} characters quoted: {text[:200]!r}..."


def test_a_huge_content_type_is_capped_in_the_error_of_a_body_that_is_not_json(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    # 60 KB, under every client's limit on one header line (64 KiB).
    octanist_server.inject("garbage", content_type="text/html; charset=" + "x" * 60_000)

    with pytest.raises(OctanistResponseError) as caught:
        hook.get_stats()

    text = str(caught.value)
    assert "a body that is not JSON (text/html; charset=xxx" in text
    assert "x\u2026, 37 bytes" in text, "cut with an ellipsis, then the body's size"
    _assert_short(text, repr(pickle.loads(pickle.dumps(caught.value))))


def test_a_huge_error_code_is_capped(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.inject("status", status=400, code="C" * HUGE, message="Bad filter")

    with pytest.raises(OctanistValidationError) as caught:
        hook.get_stats()

    assert caught.value.code == "C" * 99 + "\u2026"
    _assert_short(str(caught.value))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"value": float("nan")}, "holds the non-standard number NaN"),
        ({"status": 7}, "has a status of type int"),
    ],
)
def test_a_huge_lead_id_is_capped_where_a_malformed_lead_is_described(
    hook: Twin, octanist_server: FakeOctanistServer, fields: dict[str, Any], words: str
) -> None:
    octanist_server.add_leads(2)
    octanist_server.inject("corrupt_lead", fields={"id": "L" * HUGE, **fields}, count=2, path="/api/leads")

    page = hook.list_leads_page(skip_malformed=True)  # a change feed's read: logged, then skipped
    with pytest.raises(OctanistResponseError) as caught:
        hook.list_leads_page()  # any other read: refused

    [note] = page.malformed
    assert note.startswith(f"Lead {'L' * 99}\u2026 {words}")
    _assert_short(note, str(caught.value))
