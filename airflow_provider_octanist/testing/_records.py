"""
What the fake remembers of each request: ``RecordedRequest``, with secret headers redacted.

Tests read these back through ``FakeOctanistServer.requests`` to check what a client sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from collections.abc import Iterable

_T = TypeVar("_T")

API_KEY_HEADER = "X-API-KEY"
REDACTED = "***"
_SECRET_HEADERS = frozenset({API_KEY_HEADER.lower(), "authorization", "proxy-authorization", "cookie"})


class HeaderDict(dict[str, str]):
    """A ``dict`` of request headers with lower-case names whose look-ups ignore case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...

    @overload
    def get(self, key: str, default: str, /) -> str: ...

    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        """
        Return the header called ``key`` (any case), or ``default`` when it was not sent.

        :param key: header name, case-insensitive.
        :param default: what to return for a header that was not sent.
        """
        return super().get(key.lower(), default)

    @classmethod
    def redacted(cls, items: Iterable[tuple[str, str]]) -> HeaderDict:
        """The headers ``items`` with the API key, authorization and cookie values replaced by ``***``."""
        headers = cls()
        for name, value in items:
            headers[name.lower()] = REDACTED if name.lower() in _SECRET_HEADERS else value
        return headers


@dataclass(frozen=True)
class RecordedRequest:
    """
    One request as the fake server received it; secrets in headers are replaced by ``***``.

    :param method: HTTP method, upper case.
    :param path: percent-decoded path without the query string, e.g. ``/api/leads/lead_x``.
    :param raw_path: the path exactly as sent on the wire (still percent-encoded), without query.
    :param query: the parsed query string, each name mapping to all its values in order.
    :param body: the parsed JSON body, or ``None`` when there was none or it was not JSON.
    :param headers: request headers (names lower-cased, look-ups case-insensitive), with the
        ``X-API-KEY``, ``Authorization`` and ``Cookie`` values redacted.
    :param connection_id: which TCP connection carried the request (1 for the first accepted).
    :param raw_body: the body bytes as received.
    :param received_at: ``time.monotonic()`` when the request had been read.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    connection_id: int
    raw_path: str
    raw_body: bytes = b""
    received_at: float = 0.0

    @property
    def api_key_sent(self) -> bool:
        """Whether the request carried an ``X-API-KEY`` header at all (its value is never kept)."""
        return API_KEY_HEADER in self.headers
