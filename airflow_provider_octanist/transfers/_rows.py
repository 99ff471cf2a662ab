"""
What a write-back row means: its columns, the lead it names and the update it carries, validated.

A row that cannot become an update is an ``invalid`` outcome with its reason, never sent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._lead_bodies import update_lead_body
from airflow_provider_octanist.transfers._outcomes import INVALID, Item, Outcome
from airflow_provider_octanist.transfers._readers import Unreadable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

LEAD_KEYS = ("id", "email", "phone")
"""The columns that name a row's lead, in the order the API tries them."""
CHANGES = ("status", "value", "note", "lossReason")
"""The columns that carry a row's change."""
COLUMNS = LEAD_KEYS + CHANGES
_ARGUMENT = {"id": "lead_id", "lossReason": "loss_reason"}
"""``update_lead`` arguments whose name differs from the API's (the column's) name."""


class InvalidRowError(ValueError):
    """A row that cannot become an update; its text is the reason, for the report."""


def parse_row(row: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """
    Return ``(lead, arguments)`` of one row: the column that names its lead, and ``update_lead``'s arguments.

    Empty strings (empty CSV cells) and ``None`` (SQL NULL) are not given. The lead is named by
    ``id``, else ``email``, else ``phone``, as the API does, and only that column is sent.

    :param row: column name to value.
    :raises InvalidRowError: naming what is wrong: an unknown column, no lead named, or what
        ``update_lead`` refuses (an unknown status, a ``lossReason`` without ``lost``, a value
        that is not a number...).
    """
    unknown = [str(name) for name in row if name not in COLUMNS]
    if unknown:
        raise InvalidRowError(
            f"unknown column(s) {', '.join(map(repr, sorted(unknown)))}: a row takes "
            f"{', '.join(COLUMNS)}, spelled as the API spells them"
        )
    given = {name: _plain(value) for name, value in row.items() if value is not None and value != ""}
    key = next((name for name in LEAD_KEYS if name in given), None)
    if key is None:
        raise InvalidRowError("names no lead: give id, email or phone")
    arguments = {_ARGUMENT.get(name, name): given[name] for name in (key, *CHANGES) if name in given}
    try:
        update_lead_body(arguments)
    except ValueError as exc:
        raise InvalidRowError(str(exc)) from None
    return {key: given[key]}, arguments


def _plain(value: Any) -> Any:
    """A database's exact number (``Decimal``) as its text, which the API reads as a number."""
    return str(value) if isinstance(value, Decimal) else value


def numbered(rows: Iterable[Mapping[Any, Any] | Unreadable]) -> Iterator[Item]:
    """Number the rows; an invalid one becomes its outcome, a valid one ``(row, lead, arguments)``."""
    for number, row in enumerate(rows, start=1):
        if isinstance(row, Unreadable):
            yield Outcome(number, INVALID, error={"message": row.reason})
            continue
        try:
            lead, arguments = parse_row(row)
        except InvalidRowError as exc:
            lead = {k: row[k] for k in LEAD_KEYS if row.get(k) not in (None, "")}
            yield Outcome(number, INVALID, dict(list(lead.items())[:1]) or None, error={"message": str(exc)})
            continue
        yield number, lead, arguments
