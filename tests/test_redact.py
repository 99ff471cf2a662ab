"""
Keeping the API key out of texts: the key and any cut piece of its start are scrubbed, in
strings and inside lists and dicts.
"""

from __future__ import annotations

import pytest

from airflow_provider_octanist import _api as api

# -- keeping the key out -----------------------------------------------------------------------

SECRET = "oct_live_7f3a9c1e5b7f3a9c1e5b"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"key {SECRET} and {SECRET}!", "key *** and ***!"),
        (f"cut inside it: '{SECRET[:14]}…'", "cut inside it: '***…'"),  # an excerpt's cut
        (f"{SECRET[:6]}", "***"),  # the shortest piece that is redacted
        (f"{SECRET[:5]} is too short to tell from text", f"{SECRET[:5]} is too short to tell from text"),
        (f"{SECRET[:8]}X{SECRET}", "***X***"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_scrub_replaces_the_key_and_any_cut_piece_of_its_start(text: str, scrubbed: str) -> None:
    assert api.scrub(text, SECRET) == scrubbed


def test_scrub_reaches_into_lists_and_dicts_and_leaves_other_values() -> None:
    value = {"a": [f"x{SECRET}", 3], SECRET: None}
    assert api.scrub(value, SECRET) == {"a": ["x***", 3], "***": None}
    assert api.scrub(f"a{SECRET}", "") == f"a{SECRET}"
