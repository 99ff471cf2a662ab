"""
The keyset walk, sans I/O: which request follows which answer, and which changes each answer adds.

Each table row scripts a walk: its start, then the answers in order; the test checks the request
the walk asked before each answer and the new leads it took from it, then that the walk is done.
A request is written ``(page number, updated_gte, updated_lt)``, instants as ms after ``T0``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_octanist._keyset.walk import (
    KeysetWalk,
    NumberedRead,
    PageRequest,
    RepeatingPagesError,
    UnsortedListing,
    prints_microseconds,
    step,
)
from airflow_provider_octanist.exceptions import OctanistResponseError

if TYPE_CHECKING:
    from _keyset.conftest import Answer, Pages

Lead = tuple[str, float]
Step = tuple[tuple[int, float | None, float | None], list[Lead], dict[str, Any], list[str]]
"""(the request asked, the answer's leads, its other fields, the leads the walk took from it)."""

MORE = {"has_more": True}

WALKS: list[tuple[str, Any, dict[str, Any], list[Step]]] = [
    (
        "from the first lead, one page",
        None,
        {},
        [((1, None, None), [("a", 1), ("b", 2)], {}, ["a", "b"])],
    ),
    (
        "from a cursor: its instant is asked again, what it handled there is not taken",
        (5, ("a",)),
        {},
        [((1, 5, None), [("a", 5), ("b", 5), ("c", 6)], {}, ["b", "c"])],
    ),
    (
        "each page moves the lower bound to its newest instant",
        (0, ()),
        {"page_size": 2},
        [
            ((1, 0, None), [("a", 1), ("b", 2)], MORE, ["a", "b"]),
            ((1, 2, None), [("b", 2), ("c", 3)], {}, ["c"]),
        ],
    ),
    (
        "the walk's own upper bound is sent with every request",
        (0, ()),
        {"before": 10, "page_size": 2},
        [
            ((1, 0, 10), [("a", 1), ("b", 2)], MORE, ["a", "b"]),
            ((1, 2, 10), [("b", 2), ("c", 3)], {}, ["c"]),
        ],
    ),
    (
        "a full page at one instant is read by page number, then the walk moves past it",
        (0, ()),
        {"page_size": 2},
        [
            ((1, 0, None), [("a", 5), ("b", 5)], MORE, ["a", "b"]),
            ((1, 5, 6), [("a", 5), ("b", 5)], MORE, []),
            ((2, 5, 6), [("c", 5)], {}, ["c"]),
            ((1, 6, None), [("d", 7)], {}, ["d"]),
        ],
    ),
    (
        "a page shorter than asked is the server's page size, not the end",
        (0, ()),
        {"page_size": 3},
        [
            ((1, 0, None), [("a", 1), ("b", 2)], {"has_more": True, "total": 5}, ["a", "b"]),
            ((1, 2, None), [("b", 2), ("c", 3)], {}, ["c"]),
        ],
    ),
    (
        "an answer that lost every lead known at the bound's instant is asked again one step earlier",
        (5, ("a",)),
        {},
        [
            ((1, 5, None), [("b", 6)], {}, []),
            ((1, 4, None), [("a", 5), ("b", 6)], {}, ["b"]),
        ],
    ),
    (
        "a page shorter than the limit the server says it used ends the walk, whatever hasMore says",
        (0, ()),
        {},
        [((1, 0, None), [("a", 1)], {"has_more": True, "limit": 50}, ["a"])],
    ),
]


@pytest.mark.parametrize(("start", "options", "steps"), [w[1:] for w in WALKS], ids=[w[0] for w in WALKS])
def test_a_keyset_walk_asks_from_its_bound_and_takes_each_change_once(
    pages: Pages, start: Any, options: dict[str, Any], steps: list[Step]
) -> None:
    if "before" in options:
        options = {**options, "before": pages.at(options["before"])}
    walk = KeysetWalk(pages.cursor(start[0], *start[1]) if start is not None else None, **options)
    for asked, leads, fields, taken in steps:
        request = walk.next_request()
        assert request == expected_request(pages, asked)
        answer = pages.answer(*leads, **fields)
        assert [c.lead_id for c in walk.read(answer, answer.changes)] == taken
    assert walk.next_request() is None
    assert walk.done


def expected_request(pages: Pages, asked: tuple[int, float | None, float | None]) -> PageRequest:
    number, gte, lt = asked
    filters: dict[str, Any] = {}
    if gte is not None:
        filters["updated_gte"] = pages.at(gte)
    if lt is not None:
        filters["updated_lt"] = pages.at(lt)
    return PageRequest(number, filters, exact_time=False)


REFUSED: list[tuple[str, list[Lead], dict[str, Any], type[Exception], str]] = [
    (
        "a page out of updatedAt order",
        [("a", 2), ("b", 1)],
        {"has_more": True},
        UnsortedListing,
        "ignored sort",
    ),
    (
        "a full page without one readable lead",
        [],
        {"has_more": True, "malformed": ("x",) * 3},
        OctanistResponseError,
        "without one readable lead",
    ),
]


@pytest.mark.parametrize(
    ("leads", "fields", "error", "says"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_keyset_walk_stops_at_an_answer_it_cannot_rely_on(
    pages: Pages, leads: list[Lead], fields: dict[str, Any], error: type[Exception], says: str
) -> None:
    walk = KeysetWalk(pages.cursor(0), page_size=3)
    walk.next_request()
    answer: Answer = pages.answer(*leads, **fields)
    with pytest.raises(error, match=says):
        walk.read(answer, answer.changes)


def test_a_numbered_read_stops_at_a_page_of_leads_it_already_read(pages: Pages) -> None:
    read = NumberedRead({}, lambda change: True)
    first = pages.answer(("a", 1), ("b", 2), has_more=True)
    read.read(first, first.changes)
    assert read.next_request() == PageRequest(2, {}, exact_time=False)
    with pytest.raises(RepeatingPagesError, match="only leads of earlier pages"):
        read.read(first, first.changes)


REREAD = [
    ("pages agreeing on total end the read", [2, 2], 1),
    ("fewer leads than total read the window again", [3, 3], 3),
]


@pytest.mark.parametrize(("totals", "passes"), [r[1:] for r in REREAD], ids=[r[0] for r in REREAD])
def test_a_numbered_read_is_read_again_while_it_found_fewer_leads_than_total(
    pages: Pages, totals: list[int], passes: int
) -> None:
    read = NumberedRead({}, lambda change: True)
    asked = 0
    while (request := read.next_request()) is not None:
        asked += 1
        answer = (
            pages.answer(("a", 1), has_more=True, total=totals[0])
            if request.number == 1
            else pages.answer(("b", 2), total=totals[1])
        )
        read.read(answer, answer.changes)
    assert asked == 2 * passes
    assert sorted(c.lead_id for c in read.found.values()) == ["a", "b"]


PRECISION = [
    ("milliseconds", "2026-01-01T12:00:00.123Z", False),
    ("microseconds", "2026-01-01T12:00:00.123456Z", True),
    ("microseconds ending in zeros", "2026-01-01T12:00:00.123000Z", True),
    ("whole seconds", "2026-01-01T12:00:00Z", False),
    ("whole seconds with an offset", "2026-01-01T12:00:00+00:00", False),
]


@pytest.mark.parametrize(("text", "fine"), [p[1:] for p in PRECISION], ids=[p[0] for p in PRECISION])
def test_a_server_printing_microseconds_is_told_by_its_timestamps(text: str, fine: bool) -> None:
    assert prints_microseconds(text) is fine


STEPS = [
    ("a whole millisecond on a millisecond server", 5, False, 1000),
    ("a whole millisecond on a microsecond server", 5, True, 1),
    ("an instant between milliseconds", 5.001, False, 1),
]


@pytest.mark.parametrize(("ms", "microseconds", "micros"), [s[1:] for s in STEPS], ids=[s[0] for s in STEPS])
def test_the_step_after_an_instant_is_the_smallest_the_server_can_print(
    pages: Pages, ms: float, microseconds: bool, micros: int
) -> None:
    assert step(pages.at(ms), microseconds).total_seconds() * 1_000_000 == pytest.approx(micros)
