"""
Fault injection: the misbehaviours ``FakeOctanistServer.inject`` queues and how each one answers.

A ``Fault`` matches requests by method and path; ``FaultQueue`` hands them out first-in, first-out.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._envelope import Response, error_for, json_response
from airflow_provider_octanist.testing._http import Delivery

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

FAULT_KINDS: tuple[str, ...] = ("status", "delay", "garbage", "truncated", "drop", "json")
"""The kinds of misbehaviour ``FakeOctanistServer.inject`` knows."""
_FAULT_OPTIONS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind: (required options, optional options)
    "status": (frozenset({"status"}), frozenset({"retry_after", "body", "code", "message", "content_type"})),
    "delay": (frozenset({"seconds"}), frozenset()),
    "garbage": (frozenset(), frozenset({"body", "status", "content_type"})),
    "truncated": (frozenset(), frozenset({"payload", "status"})),
    "drop": (frozenset(), frozenset({"process"})),
    "json": (frozenset({"payload"}), frozenset({"status"})),
}
_DEFAULT_GARBAGE = "<html><body>Bad gateway</body></html>"


@dataclass(frozen=True)
class Fault:
    """
    A misbehaviour waiting for the next matching request(s); see ``FakeOctanistServer.inject``.

    :param kind: one of ``FAULT_KINDS``.
    :param count: how many matching requests it still applies to.
    :param method: only requests with this method (upper case) match; ``None`` for any.
    :param path: only requests with exactly this decoded path (no query) match; ``None`` for any.
    :param path_prefix: only requests whose decoded path starts with this match; ``None`` for any.
    :param options: the kind's options, e.g. ``{"status": 503, "retry_after": 2}``.
    """

    kind: str
    count: int = 1
    method: str | None = None
    path: str | None = None
    path_prefix: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

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
    count: int,
    method: str | None,
    path: str | None,
    path_prefix: str | None,
    options: Mapping[str, Any],
) -> Fault:
    """Check a fault's kind, count and options (raise ``ValueError``/``TypeError``) and build it."""
    if kind not in _FAULT_OPTIONS:
        raise ValueError(f"Unknown fault {kind!r}: use one of {', '.join(FAULT_KINDS)}.")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a whole number of at least 1, got {count!r}.")
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
    return Fault(
        kind=kind,
        count=count,
        method=None if method is None else method.upper(),
        path=path,
        path_prefix=path_prefix,
        options=dict(options),
    )


class _PendingFault:
    """A queued fault and how many more requests it applies to."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
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
                    pending.remaining -= 1
                    if pending.remaining <= 0:
                        self._pending.remove(pending)
                    return pending.fault
        return None

    def pending(self) -> list[Fault]:
        """Faults not used up yet, in order, each with ``count`` set to what is left."""
        with self._lock:
            return [replace(p.fault, count=p.remaining) for p in self._pending]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._pending.clear()


@dataclass(frozen=True)
class Exchange:
    """
    One request a fault applies to, and what a fault may do with it.

    :param options: the fault's options.
    :param respond: answers the request normally (and lets it take effect).
    :param pause: waits some seconds, waking early when the server stops.
    """

    options: Mapping[str, Any]
    respond: Callable[[], Response]
    pause: Callable[[float], None]


def answer(fault: Fault, respond: Callable[[], Response], pause: Callable[[float], None]) -> Delivery:
    """
    How the server answers a request that ``fault`` applies to.

    :param fault: the fault taken for this request.
    :param respond: answers the request normally (and lets it take effect).
    :param pause: waits some seconds, waking early when the server stops.
    """
    return _ANSWERS[fault.kind](Exchange(fault.options, respond, pause))


def _delay(exchange: Exchange) -> Delivery:
    exchange.pause(float(exchange.options["seconds"]))
    return Delivery(exchange.respond())


def _drop(exchange: Exchange) -> Delivery:
    if exchange.options.get("process"):
        exchange.respond()
    return Delivery(None)


def _truncated(exchange: Exchange) -> Delivery:
    options = exchange.options
    if "payload" in options:
        return Delivery(json_response(int(options.get("status", 200)), options["payload"]), truncate=True)
    return Delivery(exchange.respond(), truncate=True)


def _json(exchange: Exchange) -> Delivery:
    return Delivery(json_response(int(exchange.options.get("status", 200)), exchange.options["payload"]))


def _garbage(exchange: Exchange) -> Delivery:
    options = exchange.options
    body = str(options.get("body", _DEFAULT_GARBAGE))
    content_type = str(options.get("content_type", "text/html; charset=utf-8"))
    return Delivery(
        Response(int(options.get("status", 200)), body.encode("utf-8"), (("Content-Type", content_type),))
    )


def _status(exchange: Exchange) -> Delivery:
    return Delivery(_status_response(exchange.options))


_ANSWERS: dict[str, Callable[[Exchange], Delivery]] = {
    "status": _status,
    "delay": _delay,
    "garbage": _garbage,
    "truncated": _truncated,
    "drop": _drop,
    "json": _json,
}


def _status_response(options: Mapping[str, Any]) -> Response:
    """The answer of a ``status`` fault: an error envelope, or the raw ``body`` given."""
    status = int(options["status"])
    extra: list[tuple[str, str]] = []
    if options.get("retry_after") is not None:
        extra.append(("Retry-After", retry_after_header(options["retry_after"])))
    if options.get("body") is not None:
        body = str(options["body"])
        content_type = str(options.get("content_type") or _guess_content_type(body))
        return Response(status, body.encode("utf-8"), (("Content-Type", content_type), *extra))
    code = options.get("code")
    message = options.get("message")
    return error_for(
        status, None if not code else str(code), None if not message else str(message), extra_headers=extra
    )


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


def _guess_content_type(body: str) -> str:
    stripped = body.lstrip()
    if stripped.startswith("<"):
        return "text/html; charset=utf-8"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json; charset=utf-8"
