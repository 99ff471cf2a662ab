"""Unit specification of ``_timestamps``: reading points in time and writing the two formats."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

import pendulum
import pytest

from airflow_provider_octanist import _timestamps as timestamps

# -- datetimes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 3, 10, 12, 0), "2026-03-10T12:00:00.000Z"),  # naive is UTC
        (datetime(2026, 3, 10, 13, 0, tzinfo=timezone(timedelta(hours=1))), "2026-03-10T12:00:00.000Z"),
        (datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=timezone.utc), "2026-03-10T12:00:00.123Z"),
        (pendulum.datetime(2026, 3, 10, 13, 0, tz="Europe/Amsterdam"), "2026-03-10T12:00:00.000Z"),
        (
            pendulum.datetime(2026, 7, 10, 14, 0, tz="Europe/Amsterdam"),
            "2026-07-10T12:00:00.000Z",
        ),  # summer time
        (pendulum.date(2026, 3, 10), "2026-03-10T00:00:00.000Z"),
        (date(2026, 3, 10), "2026-03-10T00:00:00.000Z"),
        ("2026-03-10T12:00:00Z", "2026-03-10T12:00:00.000Z"),
        ("2026-03-10T12:00:00.5+00:00", "2026-03-10T12:00:00.500Z"),
        ("2026-03-10T14:00:00+02:00", "2026-03-10T12:00:00.000Z"),
        ("2026-03-10T12:00:00", "2026-03-10T12:00:00.000Z"),  # no offset is UTC
        ("2026-03-10 12:00", "2026-03-10T12:00:00.000Z"),
        ("2026-03-10", "2026-03-10T00:00:00.000Z"),
        ("  2026-03-10T12:00:00Z ", "2026-03-10T12:00:00.000Z"),
        ("20260310T120000Z", "2026-03-10T12:00:00.000Z"),
    ],
)
def test_points_in_time_are_rendered_as_octanist_writes_them(value: Any, expected: str) -> None:
    assert timestamps.api_timestamp(value, "updated_gt") == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "now",
        "today",
        "12:00",
        "10/03/2026",
        "March 10 2026",
        "2026-02-30",
        "P1D",
        1767225600,
        None,
    ],
)
def test_anything_but_a_datetime_date_or_iso_string_is_refused(value: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^updated_gt must be (an ISO 8601 date-time|a datetime, a date or an ISO)"
    ):
        timestamps.to_utc(value, "updated_gt")


def test_to_utc_returns_an_aware_utc_datetime() -> None:
    moment = timestamps.to_utc(datetime(2026, 3, 10, 12, 0), "x")

    assert moment.tzinfo == timezone.utc
    assert moment == datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-15T10:30:00.000Z", datetime(2026, 1, 15, 10, 30, tzinfo=timezone.utc)),
        ("2026-01-15T10:30:00Z", datetime(2026, 1, 15, 10, 30, tzinfo=timezone.utc)),
        ("garbage", None),
        ("", None),
        (None, None),
        (1, None),
    ],
)
def test_parse_timestamp_reads_api_timestamps_or_gives_none(value: Any, expected: datetime | None) -> None:
    assert timestamps.parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-10", "2026-03-10"),
        (date(2026, 3, 10), "2026-03-10"),
        (datetime(2026, 3, 10, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "2026-03-11"),  # in UTC
        (pendulum.date(2026, 3, 10), "2026-03-10"),
    ],
)
def test_days_are_rendered_as_yyyy_mm_dd(value: Any, expected: str) -> None:
    assert timestamps.format_day(value, "start_date") == expected


@pytest.mark.parametrize("value", ["2026-3-10", "10.03.2026", "2026-02-30", "", None, 20260310])
def test_bad_days_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="start_date must be a date or a 'YYYY-MM-DD' string"):
        timestamps.format_day(value, "start_date")


def test_the_cursor_format_keeps_microseconds_and_the_api_format_cuts_them() -> None:
    moment = datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=timezone.utc)

    assert timestamps.cursor_timestamp(moment) == "2026-03-10T12:00:00.123456Z"
    assert timestamps.api_timestamp(moment, "x") == "2026-03-10T12:00:00.123Z"
    assert timestamps.cursor_timestamp(moment.replace(microsecond=123000)) == "2026-03-10T12:00:00.123Z"
    assert timestamps.parse_timestamp(timestamps.cursor_timestamp(moment)) == moment


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("gte", "2026-03-10T12:00:00.124Z"),  # a lead at .123 is not >= .123456
        ("gt", "2026-03-10T12:00:00.123Z"),  # > .123 takes .124 on, as > .123456 does
        ("lt", "2026-03-10T12:00:00.124Z"),  # a lead at .123 is < .123456: it stays in
        ("lte", "2026-03-10T12:00:00.123Z"),
    ],
)
def test_a_finer_time_filter_rounds_to_the_millisecond_that_keeps_its_meaning(op: str, expected: str) -> None:
    moment = datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=timezone.utc)

    assert timestamps.filter_timestamp(moment, "updated_" + op, op) == expected
    assert (
        timestamps.filter_timestamp(moment, "updated_" + op, op, exact=True) == "2026-03-10T12:00:00.123456Z"
    )


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_a_whole_millisecond_filter_is_written_as_it_is(op: str) -> None:
    assert timestamps.filter_timestamp("2026-03-10T12:00:00.123Z", "x", op) == "2026-03-10T12:00:00.123Z"
    assert timestamps.filter_timestamp(date(2026, 3, 10), "x", op) == "2026-03-10T00:00:00.000Z"


def test_rounding_up_carries_into_the_next_second_and_day() -> None:
    moment = datetime(2026, 12, 31, 23, 59, 59, 999500, tzinfo=timezone.utc)

    assert timestamps.filter_timestamp(moment, "x", "gte") == "2027-01-01T00:00:00.000Z"
