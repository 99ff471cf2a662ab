"""
Keeping the API key out of everything a server may say back, and capping what it says.

Every error built from an answer passes through :func:`scrub_error` before a hook raises it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_provider_octanist.exceptions import OctanistError

MAX_SERVER_TEXT = 500
"""Characters of one server-supplied text (an error message) kept in an exception."""

REDACTED = "***"

_E = TypeVar("_E", bound="OctanistError")


def cap(text: str, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def scrub(value: Any, secret: str) -> Any:
    """``value`` (a string, or lists/dicts of them) with every occurrence of ``secret`` replaced."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, REDACTED) if secret in value else value
    if isinstance(value, list):
        return [scrub(item, secret) for item in value]
    if isinstance(value, dict):
        return {scrub(key, secret): scrub(item, secret) for key, item in value.items()}
    return value


def scrub_error(error: _E, secret: str) -> _E:
    """
    ``error`` with ``secret`` removed from its message, code, request id, hint and details.

    A server may echo the key it was sent (e.g. "Invalid API key: <key>"); the error may then be
    logged, pickled into a trigger event or shown by ``test_connection()``.
    """
    if not secret:
        return error
    error.message = scrub(error.message, secret)
    error.code = scrub(error.code, secret)
    error.request_id = scrub(error.request_id, secret)
    error.hint = scrub(error.hint, secret)
    error.details = scrub(error.details, secret)
    error.args = (error._text(),)
    return error
