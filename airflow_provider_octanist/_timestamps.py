"""
Time: read points in time as aware UTC and write them in the two formats this provider sends.

Standard library first (DAG files import this module); pendulum's parser is loaded only for a rare
spelling the standard library cannot read.

The two formats differ on purpose:

- :func:`api_timestamp` writes **milliseconds** (``2026-01-15T10:30:00.000Z``), the precision
  Octanist stores and the only one its filters understand;
- :func:`cursor_timestamp` keeps **microseconds** when a value has them, because a watcher's
  watermark must round-trip exactly through the asset state store (truncating it could report a
  change twice).

``filter_timestamp`` writes the bound of a time filter in milliseconds too, as Octanist
documents them (a strict server refuses anything finer with ``INVALID_DATE``), rounded in the
direction that keeps the filter's meaning for instants stored in whole milliseconds; only a
server seen writing microseconds itself is asked in microseconds.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "api_timestamp",
    "cursor_timestamp",
    "filter_timestamp",
    "finer_than_milliseconds",
    "format_day",
    "parse_timestamp",
    "to_utc",
    "utc_now",
    "whole_millisecond",
]

_ISO_START = re.compile(r"\d{4}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(timezone.utc)


def _as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken as UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _parse_with_pendulum(text: str) -> datetime | None:
    import pendulum  # its parser is not free to import: load it only when a string needs it

    try:
        parsed = pendulum.parse(text, strict=True)
    except ValueError:  # pendulum's ParserError is a ValueError
        return None
    return parsed if isinstance(parsed, datetime) else None


def parse_timestamp(value: Any) -> datetime | None:
    """
    Read an ISO 8601 timestamp as aware UTC; ``None`` when it is missing or not one.

    Only strings that start with a year are read: pendulum alone would also read "now", a bare
    "12:00" as today, and "10/03/2026" as October 3rd. Naive values are taken as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if not _ISO_START.match(text):
        return None
    stdlib = text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text
    try:
        moment: datetime | None = datetime.fromisoformat(stdlib)
    except ValueError:
        # Rarer spellings (no separators, odd fractions): pendulum knows them all.
        moment = _parse_with_pendulum(text)
    return None if moment is None else _as_utc(moment)


def to_utc(value: datetime | date | str, what: str) -> datetime:
    """
    Read a user-given point in time (``datetime``/pendulum, ``date`` or ISO 8601 string) as aware UTC.

    Naive datetimes (and strings without an offset) are taken as UTC; a ``date`` is its midnight UTC.

    :param value: the point in time.
    :param what: the argument's name, for the message of the ``ValueError`` raised otherwise.
    """
    if isinstance(value, datetime):
        return _as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str) and value.strip():
        moment = parse_timestamp(value)
        if moment is None:
            raise ValueError(
                f"{what} must be an ISO 8601 date-time such as 2026-03-10T12:00:00Z, got {value!r}."
            )
        return moment
    raise ValueError(f"{what} must be a datetime, a date or an ISO 8601 string, got {value!r}.")


def api_timestamp(value: datetime | date | str, what: str) -> str:
    """
    Write a point in time the way Octanist's API reads and writes them: ``2026-01-15T10:30:00.000Z``.

    Milliseconds, always three digits: sub-millisecond precision is cut off.
    """
    moment = to_utc(value, what)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def cursor_timestamp(moment: datetime) -> str:
    """
    Write an instant of a watcher's watermark: as :func:`api_timestamp`, but keeping any microseconds.

    A whole millisecond is written with three digits (as Octanist writes it), anything finer with six.
    """
    moment = _as_utc(moment)
    micros = moment.microsecond
    fraction = f"{micros // 1000:03d}" if micros % 1000 == 0 else f"{micros:06d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


ROUNDED_UP = frozenset({"gte", "lt"})
"""Filter operators whose bound moves up to the next millisecond when it has a finer part."""


def filter_timestamp(value: datetime | date | str, what: str, op: str, *, exact: bool = False) -> str:
    """
    Write the bound of a time filter (``updatedAt[op]``) in milliseconds, keeping the filter's meaning.

    Octanist stores and documents milliseconds. A bound with a finer part (a user's ``datetime``,
    say ``12:00:00.123456``) is moved to a millisecond that selects exactly the same instants
    among whole milliseconds: ``gte`` and ``lt`` round up (``>= .123456`` is ``>= .124``, and
    ``< .123456`` still takes ``.123`` as ``< .124``), ``gt`` and ``lte`` round down (``> .123``,
    ``<= .123``). A whole millisecond is written as it is.

    :param value: the bound: a datetime, a date or an ISO 8601 string (naive means UTC).
    :param what: the argument's name, for the message of the ``ValueError`` raised otherwise.
    :param op: the filter's operator: ``gt``, ``gte``, ``lt`` or ``lte``.
    :param exact: keep microseconds, as ``cursor_timestamp`` does: for a server that writes
        them itself, whose instants milliseconds could not tell apart.
    """
    moment = to_utc(value, what)
    if exact:
        return cursor_timestamp(moment)
    whole = whole_millisecond(moment)
    if whole != moment and op in ROUNDED_UP:
        whole += timedelta(milliseconds=1)
    return api_timestamp(whole, what)


def finer_than_milliseconds(moment: datetime | None) -> bool:
    """Whether ``moment`` (say, a server's ``meta.timestamp``) has a part below the millisecond."""
    return moment is not None and moment.microsecond % 1000 != 0


def whole_millisecond(moment: datetime) -> datetime:
    """``moment`` with its sub-millisecond part cut off (Octanist's own precision)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_day(value: date | datetime | str, what: str) -> str:
    """Write a calendar day as ``YYYY-MM-DD`` (datetimes are converted to UTC first)."""
    if isinstance(value, datetime):
        return to_utc(value, what).strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, str) and _DAY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip()).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{what} must be a date or a 'YYYY-MM-DD' string, got {value!r}.")
