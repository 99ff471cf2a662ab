"""
How each fault kind answers the request it applies to, given what the request was.

``answer`` looks the kind up; the JSON-rewriting kinds share ``_transformed``.
"""

from __future__ import annotations

import json
import random
import struct
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._envelope import (
    JSON_CONTENT_TYPE,
    Response,
    error_for,
    json_bytes,
    json_response,
)
from airflow_provider_octanist.testing._faults import retry_after_header
from airflow_provider_octanist.testing._http import Delivery

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from airflow_provider_octanist.testing._faults import Fault
    from airflow_provider_octanist.testing._records import RecordedRequest
    from airflow_provider_octanist.testing._store import LeadStore

    ListOrder = Callable[[list[Any]], list[Any]]

_DEFAULT_ECHO = "Invalid API key: {key}"
_DEFAULT_DEPTH = 100_000
_DEFAULT_GARBAGE = "<html><body>Bad gateway</body></html>"


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
        first = json.loads(first_page.body)["data"]
    except (ValueError, KeyError, TypeError):
        return Delivery(first_page)
    has_more = bool(exchange.options.get("has_more", True))
    fresh = int(exchange.options.get("fresh", 0))

    def repeat(payload: Any) -> Any:
        if isinstance(payload, dict) and payload.get("success") is True:
            # ``fresh`` of the page's own leads, the rest of it page 1's; none fresh: page 1 but its first
            payload["data"] = payload["data"][:fresh] + first[fresh:] if fresh else first[1:]
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


_PAD = b" " * (1 << 20)
"""One mebibyte of the spaces a ``huge`` body is padded with (JSON allows any amount)."""

_EMPTY_OBJECTS = b"{}," * ((1 << 20) // 3)
"""Nearly a mebibyte of the empty objects a ``huge`` body with ``values`` is filled with."""


def _huge(exchange: Exchange) -> Delivery:
    size = int(exchange.options["decoded_bytes"])
    if exchange.options.get("values", False):
        head, pad, tail = b'{"success": true, "data": [', _EMPTY_OBJECTS, b"{}]}"
    else:
        head, pad, tail = b'{"success": true, "data": {}', _PAD, b"}"
    pads, rest = divmod(size - len(head) - len(tail), len(pad))
    # What does not fill a whole block: whole objects, then spaces (JSON allows them after a comma).
    end = pad[: rest - rest % 3] + b" " * (rest % 3) + tail
    headers: tuple[tuple[str, str], ...] = (("Content-Type", JSON_CONTENT_TYPE),)
    if not exchange.options.get("gzip", False):
        plain = _plain_pieces(head, pad, pads, end)
        return Delivery(Response(200, b"", headers), stream=plain, stream_length=size)
    pieces, length = _gzip_pieces(head, pad, pads, end)
    return Delivery(
        Response(200, b"", (*headers, ("Content-Encoding", "gzip"))), stream=pieces, stream_length=length
    )


def _plain_pieces(head: bytes, pad: bytes, pads: int, end: bytes) -> Iterator[bytes]:
    yield head
    for _ in range(pads):
        yield pad
    yield end


def _gzip_pieces(head: bytes, pad: bytes, pads: int, end: bytes) -> tuple[Iterator[bytes], int]:
    """
    ``head``, ``pads`` times ``pad`` (about a mebibyte) and ``end`` as one gzip member, made as it is sent.

    A full flush ends each compressed block on a byte boundary with no reference behind it,
    so one compressed block repeated is a valid stream: gigabytes cost nothing to produce.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(pad) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(end) + compressor.flush(zlib.Z_FINISH)
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    length = len(gzip_header) + len(first) + pads * len(block) + len(last) + 8

    def pieces() -> Iterator[bytes]:
        yield gzip_header + first
        for start in range(0, pads, _BLOCKS_PER_WRITE):
            yield block * min(_BLOCKS_PER_WRITE, pads - start)
        # The checksum only once the end is reached: a client that stops early costs nothing.
        crc = zlib.crc32(head)
        for _ in range(pads):
            crc = zlib.crc32(pad, crc)
        crc = zlib.crc32(end, crc)
        size = len(head) + pads * len(pad) + len(end)
        yield last + struct.pack("<II", crc, size & 0xFFFFFFFF)

    return pieces(), length


_BLOCKS_PER_WRITE = 64
"""Compressed mebibytes per write of a gzip ``huge`` answer (about 64 KiB on the wire)."""


def _mislabelled(exchange: Exchange) -> Delivery:
    response = exchange.respond()
    encoding = str(exchange.options.get("encoding", "gzip"))
    return Delivery(replace(response, headers=(*response.headers, ("Content-Encoding", encoding))))


_ANSWERS: dict[str, Callable[[Exchange], Delivery]] = {
    "status": _status,
    "delay": _delay,
    "garbage": _garbage,
    "truncated": _truncated,
    "drop": _drop,
    "json": _json,
    "drip": _drip,
    "unsorted": _unsorted,
    "corrupt_lead": _corrupt_lead,
    "wrong_lead": _wrong_lead,
    "nested": _nested,
    "envelope": _envelope,
    "echo_key": _echo_key,
    "repeat_pages": _repeat_pages,
    "transform": _transform,
    "huge": _huge,
    "mislabelled": _mislabelled,
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


def _guess_content_type(body: str) -> str:
    stripped = body.lstrip()
    if stripped.startswith("<"):
        return "text/html; charset=utf-8"
    try:
        json.loads(body)
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json; charset=utf-8"
