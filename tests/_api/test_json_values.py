"""
Counting an answer's JSON values before it is parsed: commas and openings outside strings,
across the windows it reads, refused past the limit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_octanist._api import json_values

# -- counting an answer's values before it is parsed ---------------------------------------------

STRINGS = ["", "a,b", "[{,,}]", 'a\\"b,[', "a\\\\", '\\\\\\"{', "\\u0022,"]
"""JSON string contents (as they stand between quotes) full of what would count outside a string."""


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "[]",
        "[1,2,3]",
        '{"a":1,"b":[true,null]}',
        "[{},{},[]]",
        *(f'["{inside}",1,2]' for inside in STRINGS),
        *(f'{{"{inside}":"{inside}"}}' for inside in STRINGS),
    ],
)
def test_too_many_values_counts_commas_and_openings_outside_strings(text: str) -> None:
    content = text.encode()
    counted = _structural_outside_strings(content) + 1
    assert counted >= _values(json.loads(content)), "the count bounds the values from above"
    for limit in range(1, counted + 3):
        assert json_values.too_many_values(content, limit) == (counted > limit), limit


def _values(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return 1 + sum(map(_values, children))


def _structural_outside_strings(content: bytes) -> int:
    """The oracle: a character-by-character walk of the JSON text."""
    count, in_string, escaped = 0, False, False
    for char in content.decode():
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        else:
            count += char in ",[{"
    return count


def test_too_many_values_refuses_past_the_limit_and_not_at_it() -> None:
    at_limit = json.dumps([0] * 99).encode()  # 100 values: the array and its items
    assert not json_values.too_many_values(at_limit, 100)
    assert json_values.too_many_values(json.dumps([0] * 100).encode(), 100)


def test_too_many_values_follows_strings_across_its_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_values, "_WINDOW", 8)
    # Strings longer than a window, and quotes and escapes on either side of every window's edge.
    for shift in range(8):
        items = ["," * shift, "," * 21, '[\\"{' * 5, *([0] * 30)]
        content = json.dumps(items, separators=(",", ":")).encode()
        counted = _structural_outside_strings(content) + 1
        assert counted == 34
        assert not json_values.too_many_values(content, counted)
        assert json_values.too_many_values(content, counted - 1)


def test_too_many_values_costs_nothing_for_an_answer_shorter_than_the_limit() -> None:
    assert not json_values.too_many_values(b"[" + b"{}," * 30 + b"{}]", 100)  # 31 values, 95 bytes
