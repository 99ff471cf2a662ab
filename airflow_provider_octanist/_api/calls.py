"""
What one API call is (method, path, query or body, whether it may be replayed) and its raw answer.

Plain data: the hooks send a :class:`Call` and hand back an :class:`Answer` for parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from airflow_provider_octanist._checks import check_lead_id
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class Call:
    """One API call: enough to send it, retry it safely and describe it in messages."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    body: Any = None
    replay_safe: bool = True
    """Whether the call may be repeated after it may have reached the server."""

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


class Answer(NamedTuple):
    """A 2xx answer as the hooks received it, before parsing."""

    status: int
    headers: Mapping[str, str]
    content: bytes


def lead_path(lead_id: Any) -> str:
    """Path of one lead; the id is validated and percent-encoded so it can never leave its segment."""
    return "/leads/" + quote(check_lead_id(lead_id), safe="")


def request_id_of(payload: Any, headers: Mapping[str, str]) -> str | None:
    """
    The request id of an answer, capped: ``meta.requestId``, else the ``X-Request-Id`` header.

    Octanist's are about 20 characters; a request id travels into every error and log line.
    """
    found: Any = None
    if isinstance(payload, dict):
        meta = payload.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("requestId"), str):
            found = meta["requestId"]
    if found is None:
        found = headers.get("X-Request-Id")
    return None if found is None else cap(str(found), MAX_SERVER_WORD)


def server_time_of(payload: Any) -> str | None:
    """
    The server's clock when it answered (``meta.timestamp``), as sent but capped; ``None`` when absent.

    Capped as request ids are: one that is not a time is quoted in the feed's log lines.
    """
    meta = payload.get("meta") if isinstance(payload, dict) else None
    stamp = meta.get("timestamp") if isinstance(meta, dict) else None
    return cap(stamp, MAX_SERVER_WORD) if isinstance(stamp, str) else None
