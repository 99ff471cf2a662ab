"""
Keeping the API key out of everything a server may say back, and capping what it says.

Every error built from an answer passes through :func:`scrub_error` before a hook raises it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_provider_octanist.exceptions import OctanistError

MAX_SERVER_TEXT = 500
"""Characters of one server-supplied text (an error message, a loss reason) kept where it is quoted."""

MAX_SERVER_WORD = 100
"""
Characters kept of a server-supplied text that should be a word or a stamp, where it is quoted.

A request id, an error code, a header value, a lead id or status, a timestamp: each is far
shorter in any real answer, and each may travel into every error, log line and trigger event.
"""

REDACTED = "***"

_E = TypeVar("_E", bound="OctanistError")


def cap(text: str, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def without_userinfo(url: str) -> str:
    """
    ``url`` with any user information (``user:password@``) before its host replaced by ``***``.

    A key pasted into a connection's host (``https://:KEY@octanist.com/api``) must not reach the
    message that says the host is wrong. Works on text too broken for ``urlsplit``; a path holding
    an ``@`` is redacted up to it as well, which costs nothing but a less precise message.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    if "@" not in rest:
        return url
    # Up to the last "@", not to the first "/": a key may hold "/", "?" or "#" itself.
    return f"{scheme}{separator}{REDACTED}@{rest.rpartition('@')[2]}"


FRAGMENT = 6
"""Characters of the start of a secret that, found in a text, are redacted with what follows of it."""


def scrub(value: Any, secret: str) -> Any:
    """
    ``value`` (a string, or lists/dicts of them) with ``secret`` replaced wherever it stands.

    Excerpts of answers are cut to a length, and a cut may fall inside the secret: so a run of text
    that is the secret's first :data:`FRAGMENT` characters or more is replaced as well.
    """
    if not secret:
        return value
    if isinstance(value, str):
        return _scrub_text(value, secret)
    if isinstance(value, list):
        return [scrub(item, secret) for item in value]
    if isinstance(value, dict):
        return {scrub(key, secret): scrub(item, secret) for key, item in value.items()}
    return value


def _scrub_text(text: str, secret: str) -> str:
    if secret in text:
        text = text.replace(secret, REDACTED)
    head = secret[:FRAGMENT]
    start = text.find(head)
    while start != -1:  # what is left are pieces of the secret's start, cut short
        end = start + len(head)
        while end < len(text) and end - start < len(secret) and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + REDACTED + text[end:]
        start = text.find(head, start + len(REDACTED))
    return text


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
