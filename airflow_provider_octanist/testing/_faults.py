"""
Fault injection: the misbehaviours ``FakeOctanistServer.inject`` knows, checks and queues.

A ``Fault`` matches requests by method and path; ``FaultQueue`` hands them out first-in, first-out;
how each kind answers lives in ``_fault_answers``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

FAULT_KINDS: tuple[str, ...] = (
    "status", "delay", "garbage", "truncated", "drop", "json",
    "drip", "unsorted", "corrupt_lead", "wrong_lead", "nested", "envelope", "echo_key", "repeat_pages",
    "transform", "huge", "mislabelled",
)  # fmt: skip
"""The kinds of misbehaviour ``FakeOctanistServer.inject`` knows."""
_FAULT_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required options, optional options)
    "status": (frozenset({"status"}), frozenset({"retry_after", "body", "code", "message", "content_type"})),
    "delay": (frozenset({"seconds"}), frozenset()),
    "garbage": (frozenset(), frozenset({"body", "status", "content_type"})),
    "truncated": (frozenset(), frozenset({"payload", "status"})),
    "drop": (frozenset(), frozenset({"process"})),
    "json": (frozenset({"payload"}), frozenset({"status"})),
    "drip": (frozenset({"interval"}), frozenset({"chunk", "headers"})),
    "unsorted": (frozenset(), frozenset({"order", "seed"})),
    "corrupt_lead": (frozenset({"fields"}), frozenset({"index"})),
    "wrong_lead": (frozenset(), frozenset({"lead_id"})),
    "nested": (frozenset(), frozenset({"depth", "status"})),
    "envelope": (frozenset(), frozenset({"success", "data", "meta", "error", "remove"})),
    "echo_key": (frozenset(), frozenset({"status", "message"})),
    "repeat_pages": (frozenset(), frozenset({"has_more", "fresh"})),
    "transform": (frozenset({"function"}), frozenset()),
    "huge": (frozenset({"decoded_bytes"}), frozenset({"gzip", "values"})),
    "mislabelled": (frozenset(), frozenset({"encoding"})),
}
_LIST_ORDERS = ("insertion", "reversed", "shuffled")


@dataclass(frozen=True)
class Fault:
    """
    A misbehaviour waiting for the next matching request(s); see ``FakeOctanistServer.inject``.

    :param kind: one of ``FAULT_KINDS``.
    :param count: how many matching requests it still applies to; ``None`` for every one until
        ``clear_faults()`` (a persistent fault).
    :param method: only requests with this method (upper case) match; ``None`` for any.
    :param path: only requests with exactly this decoded path (no query) match; ``None`` for any.
    :param path_prefix: only requests whose decoded path starts with this match; ``None`` for any.
    :param options: the kind's options, e.g. ``{"status": 503, "retry_after": 2}``.
    :param after: matching requests still answered normally before the fault applies (a fault
        in the middle of a walk: ``after=2`` spares pages 1 and 2 and hits the third request).
    """

    kind: str
    count: int | None = 1
    method: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    after: int = 0

    def matches(self, method: str, path: str) -> bool:
        """
        Tell whether a request is one this fault applies to.

        :param method: the request's HTTP method.
        :param path: the request's decoded path without query string.
        """
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is not None and self.path != path:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)


def make_fault(
    kind: str,
    *,
    count: int | None,
    method: str | None,
    path: str | None,
    path_prefix: str | None,
    options: Mapping[str, Any],
    after: int = 0,
) -> Fault:
    """Check a fault's kind, count and options (raise ``ValueError``/``TypeError``) and build it."""
    if kind not in _FAULT_OPTIONS:
        raise ValueError(f"Unknown fault {kind!r}: use one of {', '.join(FAULT_KINDS)}.")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a whole number of at least 1 or None (persistent), got {count!r}.")
    if not _is_whole(after, minimum=0):
        raise ValueError(f"after must be a whole number of requests (0 or more), got {after!r}.")
    required, optional = _FAULT_OPTIONS[kind]
    missing = sorted(required - set(options))
    unknown = sorted(set(options) - required - optional)
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown {', '.join(unknown)}")
        valid = ", ".join(sorted(required | optional)) or "none"
        raise TypeError(f"Fault {kind!r}: {'; '.join(problems)} option(s) (valid: {valid}).")
    status = options.get("status")
    if status is not None and (
        isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599
    ):
        raise ValueError(f"Fault {kind!r}: status must be an HTTP status code, got {status!r}.")
    if kind == "delay" and (not isinstance(options["seconds"], (int, float)) or options["seconds"] < 0):
        raise ValueError(f"Fault 'delay': seconds must be a non-negative number, got {options['seconds']!r}.")
    if "retry_after" in options:
        retry_after_header(options["retry_after"])
    _check_option_values(kind, options)
    return Fault(
        kind=kind,
        count=count,
        method=None if method is None else method.upper(),
        path=path,
        path_prefix=path_prefix,
        options=dict(options),
        after=after,
    )


def _check_option_values(kind: str, options: Mapping[str, Any]) -> None:
    """Value checks for the options of the hostile-answer kinds; raise ``ValueError``."""
    problem = None
    if kind == "drip" and not _is_number(options["interval"], minimum=0):
        problem = f"interval must be a non-negative number of seconds, got {options['interval']!r}"
    elif "chunk" in options and not _is_whole(options["chunk"], minimum=1):
        problem = f"chunk must be a whole number of bytes of at least 1, got {options['chunk']!r}"
    elif "depth" in options and not _is_whole(options["depth"], minimum=1):
        problem = f"depth must be a whole number of at least 1, got {options['depth']!r}"
    elif "index" in options and not _is_whole(options["index"], minimum=None):
        problem = f"index must be a whole number, got {options['index']!r}"
    elif options.get("order", "insertion") not in _LIST_ORDERS:
        problem = f"order must be one of {', '.join(_LIST_ORDERS)}, got {options['order']!r}"
    elif kind == "corrupt_lead" and not isinstance(options["fields"], dict):
        problem = f"fields must be a dict of lead fields to overwrite, got {options['fields']!r}"
    elif kind == "huge" and not _is_whole(options["decoded_bytes"], minimum=64):
        problem = f"decoded_bytes must be a whole number of at least 64, got {options['decoded_bytes']!r}"
    elif kind == "transform" and not callable(options["function"]):
        problem = f"function must be callable, got {options['function']!r}"
    if problem is not None:
        raise ValueError(f"Fault {kind!r}: {problem}.")


def _is_number(value: Any, *, minimum: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum


def _is_whole(value: Any, *, minimum: int | None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


class _PendingFault:
    """A queued fault, how many matching requests it still spares and how many more it applies to."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.waiting = fault.after
        self.remaining = fault.count


class FaultQueue:
    """Faults waiting for requests, used first-in, first-out; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[_PendingFault] = []

    def add(self, fault: Fault) -> None:
        """Queue ``fault`` behind the others."""
        with self._lock:
            self._pending.append(_PendingFault(fault))

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching the request, used once; ``None`` if none matches."""
        with self._lock:
            for pending in self._pending:
                if pending.fault.matches(method, path):
                    if pending.waiting > 0:
                        pending.waiting -= 1
                        continue  # spared: a fault further down the queue may still apply
                    if pending.remaining is not None:
                        pending.remaining -= 1
                        if pending.remaining <= 0:
                            self._pending.remove(pending)
                    return pending.fault
        return None

    def pending(self) -> list[Fault]:
        """Faults not used up yet, in order, each with ``count`` and ``after`` set to what is left."""
        with self._lock:
            return [replace(p.fault, count=p.remaining, after=p.waiting) for p in self._pending]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()


def retry_after_header(value: Any) -> str:
    """``Retry-After`` from seconds (int/float), an HTTP-date string or an aware datetime."""
    if isinstance(value, bool):
        raise TypeError(f"retry_after must be seconds, an HTTP-date string or a datetime, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return format_datetime(moment.astimezone(timezone.utc), usegmt=True)
    if isinstance(value, str):
        return value
    raise TypeError(f"retry_after must be seconds, an HTTP-date string or a datetime, got {value!r}")
