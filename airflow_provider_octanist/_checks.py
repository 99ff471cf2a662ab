"""Argument checks shared by hooks, operators, the sensor and the triggers (standard library only)."""

from __future__ import annotations

from typing import Any


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


def check_max_consecutive_errors(value: Any) -> int:
    """
    Return ``value`` if it is a whole number of at least 1, else raise ``ValueError``.

    :param value: failed checks in a row before a deferred sensor gives up.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"max_consecutive_errors must be a whole number, got {value!r}.")
    if value < 1:
        raise ValueError(f"max_consecutive_errors must be at least 1, got {value}.")
    return value
