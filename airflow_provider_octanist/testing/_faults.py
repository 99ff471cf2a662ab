"""
Fault injection: the misbehaviours ``FakeOctanistServer.inject`` queues and how each one answers.

A ``Fault`` matches requests by method and path; ``FaultQueue`` hands them out first-in, first-out.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._envelope import (
    JSON_CONTENT_TYPE,
    Response,
    error_for,
    json_bytes,
    json_response,
)
from airflow_provider_octanist.testing._http import Delivery

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_octanist.testing._records import RecordedRequest
    from airflow_provider_octanist.testing._store import LeadStore

    ListOrder = Callable[[list[Any]], list[Any]]

FAULT_KINDS: tuple[str, ...] = (
    "status", "delay", "garbage", "truncated", "drop", "json",
    "drip", "unsorted", "corrupt_lead", "wrong_lead", "nested", "envelope", "echo_key", "repeat_pages",
    "transform",
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
    "repeat_pages": (frozenset(), frozenset({"has_more"})),
    "transform": (frozenset({"function"}), frozenset()),
}
_LIST_ORDERS = ("insertion", "reversed", "shuffled")
_DEFAULT_ECHO = "Invalid API key: {key}"
_DEFAULT_DEPTH = 100_000
_DEFAULT_GARBAGE = "<html><body>Bad gateway</body></html>"


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
    """

    kind: str
    count: int | None = 1
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
    count: int | None,
    method: str | None,
    path: str | None,
    path_prefix: str | None,
    options: Mapping[str, Any],
) -> Fault:
    """Check a fault's kind, count and options (raise ``ValueError``/``TypeError``) and build it."""
    if kind not in _FAULT_OPTIONS:
        raise ValueError(f"Unknown fault {kind!r}: use one of {', '.join(FAULT_KINDS)}.")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be a whole number of at least 1 or None (persistent), got {count!r}.")
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
    _check_new_kind_options(kind, options)
    return Fault(
        kind=kind,
        count=count,
        method=None if method is None else method.upper(),
        path=path,
        path_prefix=path_prefix,
        options=dict(options),
    )


def _check_new_kind_options(kind: str, options: Mapping[str, Any]) -> None:
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
    elif kind == "transform" and not callable(options["function"]):
        problem = f"function must be callable, got {options['function']!r}"
    if problem is not None:
        raise ValueError(f"Fault {kind!r}: {problem}.")


def _is_number(value: Any, *, minimum: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum


def _is_whole(value: Any, *, minimum: int | None) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


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
                    if pending.remaining is not None:
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
    :param request: the request as received.
    :param key: the ``X-API-KEY`` value the request carried, if any.
    :param store: the server's leads.
    :param route: answers a request normally (and lets it take effect), optionally listing leads
        in the order a function gives instead of the requested sort.
    :param pause: waits some seconds, waking early when the server stops.
    """

    options: Mapping[str, Any]
    request: RecordedRequest
    key: str | None
    store: LeadStore
    route: Callable[[RecordedRequest, ListOrder | None], Response]
    pause: Callable[[float], None]

    def respond(
        self, request: RecordedRequest | None = None, list_order: ListOrder | None = None
    ) -> Response:
        """Answer this request (or ``request``) as the API would."""
        return self.route(request or self.request, list_order)


def answer(fault: Fault, exchange: Exchange) -> Delivery:
    """
    How the server answers a request that ``fault`` applies to.

    :param fault: the fault taken for this request.
    :param exchange: the request and what the fault may do with it (its ``options`` are ignored).
    """
    return _ANSWERS[fault.kind](replace(exchange, options=fault.options))


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


def _drip(exchange: Exchange) -> Delivery:
    options = exchange.options
    return Delivery(
        exchange.respond(),
        drip_interval=float(options["interval"]),
        drip_chunk=int(options.get("chunk", 1)),
        drip_headers=bool(options.get("headers", False)),
    )


def _unsorted(exchange: Exchange) -> Delivery:
    order = exchange.options.get("order", "insertion")
    seed = exchange.options.get("seed", 0)

    def reorder(leads: list[Any]) -> list[Any]:
        if order == "reversed":
            return leads[::-1]
        if order == "shuffled":
            random.Random(seed).shuffle(leads)  # noqa: S311 - a reproducible order, not a secret
        return leads

    return Delivery(exchange.respond(list_order=reorder))


def _corrupt_lead(exchange: Exchange) -> Delivery:
    fields, index = exchange.options["fields"], int(exchange.options.get("index", 0))

    def corrupt(payload: Any) -> Any:
        data = payload.get("data") if isinstance(payload, dict) else None
        lead = data[index] if isinstance(data, list) and -len(data) <= index < len(data) else data
        if isinstance(lead, dict):
            lead.update(fields)
        return payload

    return _transformed(exchange, corrupt)


def _wrong_lead(exchange: Exchange) -> Delivery:
    requested = exchange.request.path.rsplit("/", 1)[-1]
    other_id = exchange.options.get("lead_id")

    def swap(payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            return payload
        others = [lead for lead in exchange.store.leads if lead["id"] != requested]
        if other_id is not None:
            payload["data"] = exchange.store.lead(str(other_id))
        elif others:
            payload["data"] = others[0]
        else:
            payload["data"] = {**payload["data"], "id": f"{requested}_other"}
        return payload

    return _transformed(exchange, swap)


def _nested(exchange: Exchange) -> Delivery:
    depth = int(exchange.options.get("depth", _DEFAULT_DEPTH))
    body = b'{"success":true,"data":' + b"[" * depth + b"]" * depth + b"}"
    status = int(exchange.options.get("status", 200))
    return Delivery(Response(status, body, (("Content-Type", JSON_CONTENT_TYPE),)))


def _envelope(exchange: Exchange) -> Delivery:
    options = exchange.options
    overrides = {name: options[name] for name in ("success", "data", "meta", "error") if name in options}
    removed = options.get("remove", ())

    def rewrite(payload: Any) -> Any:
        if isinstance(payload, dict):
            payload.update(overrides)
            for name in removed:
                payload.pop(name, None)
        return payload

    return _transformed(exchange, rewrite)


def _echo_key(exchange: Exchange) -> Delivery:
    template = str(exchange.options.get("message", _DEFAULT_ECHO))
    message = template.replace("{key}", exchange.key or "")
    return Delivery(error_for(int(exchange.options.get("status", 401)), message=message))


def _repeat_pages(exchange: Exchange) -> Delivery:
    query = exchange.request.query
    if query.get("page", ["1"])[0].strip() in ("", "1"):
        return Delivery(exchange.respond())
    first_page = exchange.respond(replace(exchange.request, query={**query, "page": ["1"]}))
    try:
        repeated = json.loads(first_page.body)["data"][1:]
    except (ValueError, KeyError, TypeError):
        return Delivery(first_page)
    has_more = bool(exchange.options.get("has_more", True))

    def repeat(payload: Any) -> Any:
        if isinstance(payload, dict) and payload.get("success") is True:
            payload["data"] = repeated
            payload["meta"]["pagination"]["hasMore"] = has_more
        return payload

    return _transformed(exchange, repeat)


def _transform(exchange: Exchange) -> Delivery:
    return _transformed(exchange, exchange.options["function"])


def _transformed(exchange: Exchange, change: Callable[[Any], Any]) -> Delivery:
    """
    The normal answer with its JSON payload passed through ``change``; a non-JSON answer is kept.

    ``change`` returns the new payload (written as JSON, ``NaN``/``Infinity`` as bare tokens), or
    ``bytes``/``str`` to send as the body exactly.
    """
    response = exchange.respond()
    try:
        payload = json.loads(response.body)
    except ValueError:
        return Delivery(response)
    result = change(payload)
    if isinstance(result, str):
        result = result.encode("utf-8")
    body = result if isinstance(result, bytes) else json_bytes(result)
    return Delivery(replace(response, body=body))


_ANSWERS: dict[str, Callable[[Exchange], Delivery]] = {
    "drip": _drip,
    "unsorted": _unsorted,
    "corrupt_lead": _corrupt_lead,
    "wrong_lead": _wrong_lead,
    "nested": _nested,
    "envelope": _envelope,
    "echo_key": _echo_key,
    "repeat_pages": _repeat_pages,
    "transform": _transform,
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
