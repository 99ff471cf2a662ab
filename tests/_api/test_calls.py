"""
A call's path and the request id of an answer: a lead id kept in one path segment, request
ids capped wherever they come from.
"""

from __future__ import annotations

import pytest

from airflow_provider_octanist import _api as api


@pytest.mark.parametrize(
    ("lead_id", "path"),
    [
        ("lead_abc123", "/leads/lead_abc123"),
        ("a/b", "/leads/a%2Fb"),
        ("a?b#c", "/leads/a%3Fb%23c"),
        ("50%", "/leads/50%25"),
        ("../check", "/leads/..%2Fcheck"),
        ("léad", "/leads/l%C3%A9ad"),
        (" lead 1 ", "/leads/lead%201"),
    ],
)
def test_lead_paths_keep_the_id_in_one_segment(lead_id: str, path: str) -> None:
    assert api.lead_path(lead_id) == path


def test_request_ids_are_capped_wherever_they_come_from() -> None:
    from_meta = api.request_id_of({"meta": {"requestId": "r" * 2_000_000}}, {})
    from_header = api.request_id_of(None, {"X-Request-Id": "h" * 60_000})

    assert from_meta == "r" * 99 + "\u2026"
    assert from_header == "h" * 99 + "\u2026"
    assert api.request_id_of(None, {"X-Request-Id": "req_a1b2c3d4e5f6"}) == "req_a1b2c3d4e5f6"
