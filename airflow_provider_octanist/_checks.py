"""
Argument checks shared by hooks, operators, the sensor and the triggers: the one place that says
what a connection id, a whole number, a positive number, a text or a lead id must look like.

Standard library only: operators and triggers call these while DAG files are parsed.
"""

from __future__ import annotations

import math
from typing import Any

LEAD_ID_MAX = 256
"""The longest lead id accepted (Octanist's ids are far shorter)."""


def check_conn_id(octanist_conn_id: Any) -> str:
    """
    Return ``octanist_conn_id`` if it can name an Airflow connection, else raise ``ValueError``.

    :param octanist_conn_id: what the caller passed as the connection id.
    """
    if not isinstance(octanist_conn_id, str) or not octanist_conn_id.strip():
        raise ValueError(
            f"octanist_conn_id must be a connection id (the id of an Airflow connection), "
            f"got {octanist_conn_id!r}."
        )
    return octanist_conn_id


def whole_number(value: Any, what: str, *, low: int, high: int | None = None) -> int:
    """
    Return ``value`` if it is an ``int`` (not a bool) from ``low`` to ``high``, else raise ``ValueError``.

    :param value: the number to check.
    :param what: its name, for the message.
    :param low: the smallest value allowed.
    :param high: the largest value allowed; ``None`` for no limit.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{what} must be {bounds}, got {value}.")
    return value


def check_max_consecutive_errors(value: Any) -> int:
    """
    Return ``value`` if it is a whole number of at least 1, else raise ``ValueError``.

    :param value: failed checks in a row before a deferred sensor gives up.
    """
    return whole_number(value, "max_consecutive_errors", low=1)


def positive_number(
    value: Any,
    what: str,
    *,
    whole: bool = False,
    zero: bool = False,
    text: bool = False,
    must_be: str = "a positive number",
) -> float:
    """
    Return ``value`` as a finite ``float`` above zero, else raise ``ValueError`` naming ``what``.

    :param value: the number to check (never a bool).
    :param what: its name, for the message.
    :param whole: it must be a whole number.
    :param zero: zero is allowed too.
    :param text: a string holding a number is read (connection extras are often strings).
    :param must_be: what the message says it must be when it is out of range.
    """
    out_of_range = f"{what} must be {must_be}, got {value!r}."
    if isinstance(value, bool) or not isinstance(value, (int, float, str) if text else (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}." if text else out_of_range)
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{what} must be a number, got {value!r}.") from None
    if whole and not number.is_integer():
        raise ValueError(f"{what} must be a whole number, got {value!r}.")
    if not math.isfinite(number) or number < 0 or (number == 0 and not zero):
        raise ValueError(out_of_range)
    return number


def non_empty_text(value: Any, what: str) -> str:
    """Return ``value`` stripped if it is a non-empty string, else raise ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}.")
    return value.strip()


def check_lead_id(lead_id: Any) -> str:
    """
    Return a lead id without surrounding white space, or raise ``ValueError`` saying what is wrong.

    :param lead_id: what the caller passed as a lead id, e.g. ``lead_abc123``.
    """
    if not isinstance(lead_id, str):
        raise ValueError(f"A lead id must be a string such as 'lead_abc123', got {type(lead_id).__name__}.")
    cleaned = lead_id.strip()
    if not cleaned:
        raise ValueError("A lead id must not be empty. Pass the id Octanist returned, e.g. 'lead_abc123'.")
    if len(cleaned) > LEAD_ID_MAX or any(ch < " " or ch == "\x7f" for ch in cleaned):
        raise ValueError(f"{lead_id!r} is not a lead id: it is too long or contains control characters.")
    if cleaned in {".", ".."}:
        raise ValueError(f"{lead_id!r} is not a lead id.")
    return cleaned
