"""The feed's watermark, directly: which changes lie after a cursor and where handling one moves it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist._keyset.cursor import Cursor, positioned

if TYPE_CHECKING:
    from _keyset.conftest import Pages

# A cursor is written (ms after T0, ids handled there); a change is (ms, lead id).
ADMITS = [
    ("a later instant", (5, ()), (6, "a"), True),
    ("an earlier instant", (5, ("a",)), (4, "b"), False),
    ("the same instant, a lead not handled there", (5, ("a",)), (5, "b"), True),
    ("the same instant, a lead handled there", (5, ("a",)), (5, "a"), False),
    ("the same instant of a cursor that handled none there", (5, ()), (5, "a"), True),
]


@pytest.mark.parametrize(
    ("cursor", "change", "admitted"), [c[1:] for c in ADMITS], ids=[c[0] for c in ADMITS]
)
def test_a_cursor_admits_the_changes_after_it_and_no_other(
    pages: Pages, cursor: tuple[int, tuple[str, ...]], change: tuple[int, str], admitted: bool
) -> None:
    assert pages.cursor(cursor[0], *cursor[1]).admits(pages.at(change[0]), change[1]) is admitted


PAST = [
    ("a later change starts a new instant", (5, ("a",)), (7, "b"), (7, ("b",))),
    ("a change at the instant joins its ids", (5, ("a",)), (5, "b"), (5, ("a", "b"))),
    ("a change already handled leaves it", (5, ("a",)), (5, "a"), (5, ("a",))),
    ("an earlier change leaves it", (5, ("a",)), (3, "b"), (5, ("a",))),
]


@pytest.mark.parametrize(("cursor", "change", "moved"), [c[1:] for c in PAST], ids=[c[0] for c in PAST])
def test_handling_a_change_moves_the_cursor_never_backwards(
    pages: Pages,
    cursor: tuple[int, tuple[str, ...]],
    change: tuple[int, str],
    moved: tuple[int, tuple[str, ...]],
) -> None:
    before = pages.cursor(cursor[0], *cursor[1])
    assert before.past(pages.at(change[0]), change[1]) == pages.cursor(moved[0], *moved[1])


# (first, second) -> first covers second, the furthest of the two.
PAIRS = [
    ("later instant", (7, ()), (5, ("a",)), True, (7, ())),
    ("earlier instant", (5, ("a",)), (7, ()), False, (7, ())),
    ("same instant, more ids", (5, ("a", "b")), (5, ("a",)), True, (5, ("a", "b"))),
    ("same instant, other ids", (5, ("a",)), (5, ("b",)), False, (5, ("a", "b"))),
    ("equal", (5, ("a",)), (5, ("a",)), True, (5, ("a",))),
]


@pytest.mark.parametrize(
    ("first", "second", "covers", "furthest"), [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS]
)
def test_of_two_cursors_the_furthest_holds_everything_either_handled(
    pages: Pages,
    first: tuple[int, tuple[str, ...]],
    second: tuple[int, tuple[str, ...]],
    covers: bool,
    furthest: tuple[int, tuple[str, ...]],
) -> None:
    a, b = pages.cursor(first[0], *first[1]), pages.cursor(second[0], *second[1])
    assert a.covers(b) is covers
    assert a.furthest(b) == pages.cursor(furthest[0], *furthest[1])


EARLIEST = [
    ("one cursor", [(5, ("a",))], (5, ("a",))),
    ("the earliest instant wins", [(7, ("b",)), (5, ("a",)), (9, ())], (5, ("a",))),
    ("at one instant, the ids all handled", [(5, ("a", "b")), (5, ("b", "c"))], (5, ("b",))),
]


@pytest.mark.parametrize(("cursors", "earliest"), [e[1:] for e in EARLIEST], ids=[e[0] for e in EARLIEST])
def test_the_earliest_cursor_is_where_every_one_of_them_has_reached(
    pages: Pages, cursors: list[tuple[int, tuple[str, ...]]], earliest: tuple[int, tuple[str, ...]]
) -> None:
    assert Cursor.earliest(pages.cursor(ms, *ids) for ms, ids in cursors) == pages.cursor(
        earliest[0], *earliest[1]
    )


def test_the_earliest_of_no_cursor_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one cursor"):
        Cursor.earliest([])


def test_a_cursor_reads_back_what_it_wrote(pages: Pages) -> None:
    cursor = pages.cursor(5.001, "b", "a")
    assert cursor.to_json() == {"updatedAt": "2026-01-01T12:00:00.005001Z", "ids": ["a", "b"]}
    assert Cursor.from_json(cursor.to_json()) == cursor


@pytest.mark.parametrize(
    "stored",
    [
        None,
        [],
        {"ids": []},
        {"updatedAt": "yesterday", "ids": []},
        {"updatedAt": "2026-01-01T00:00:00Z"},
        {"updatedAt": "2026-01-01T00:00:00Z", "ids": [1]},
    ],
)
def test_what_is_not_a_cursor_is_refused(stored: Any) -> None:
    with pytest.raises(ValueError, match="not a cursor"):
        Cursor.from_json(stored)


LEADS = [
    ("a lead", {"id": "a", "updatedAt": "2026-01-01T00:00:00Z", "status": "won"}, None),
    ("a lead without a status", {"id": "a", "updatedAt": "2026-01-01T00:00:00Z"}, None),
    ("not an object", ["a"], "that is a list, not an object"),
    ("an empty id", {"id": "", "updatedAt": "2026-01-01T00:00:00Z"}, "without a string id"),
    ("a number for an id", {"id": 7, "updatedAt": "2026-01-01T00:00:00Z"}, "without a string id"),
    ("no updatedAt", {"id": "a"}, "without a readable updatedAt"),
    ("an unreadable updatedAt", {"id": "a", "updatedAt": "soon"}, "without a readable updatedAt"),
    (
        "a status that is no string",
        {"id": "a", "updatedAt": "2026-01-01T00:00:00Z", "status": 3},
        "whose status is int",
    ),
]


@pytest.mark.parametrize(("item", "problem"), [c[1:] for c in LEADS], ids=[c[0] for c in LEADS])
def test_a_listed_lead_is_placed_or_left_out_with_its_reason(item: Any, problem: str | None) -> None:
    changes, rejected = positioned([item], "GET /leads")
    if problem is None:
        assert [(c.lead_id, c.lead) for c in changes] == [("a", item)]
        assert rejected == []
    else:
        assert changes == []
        assert len(rejected) == 1
        assert rejected[0].startswith(f"GET /leads returned a lead {problem}")
