"""
Reading Octanist's answers: the JSON envelope, request ids, leads and rows, and 1.0-era bodies.

Turns an :class:`~airflow_provider_octanist._api.calls.Answer` into data or the right error.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist._api.calls import Call, request_id_of
from airflow_provider_octanist._api.errors import error_fields, kind_of_code, make_error
from airflow_provider_octanist._api.json_values import MAX_JSON_VALUES, too_many_values
from airflow_provider_octanist._lead_vocabulary import LEAD_STATUSES, LEGACY_ALIASES
from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap
from airflow_provider_octanist.exceptions import OctanistResponseError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from airflow_provider_octanist._api.settings import Settings


class NotStrictJSONError(ValueError):
    """A JSON number Python would read but strict JSON (and a trigger event) cannot carry."""


class NonFinite:
    """Where a decoded answer had a number strict JSON cannot carry; its text says which."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


class NonFiniteItem(dict):  # type: ignore[type-arg]
    """An item of ``data`` that holds a :class:`NonFinite` (see :func:`loads_strict`): refused alone."""

    what = ""


def first_non_finite(value: Any) -> str | None:
    """What the first non-standard number in a decoded ``value`` is, or ``None`` if it has none."""
    if isinstance(value, NonFinite):
        return value.what
    if isinstance(value, NonFiniteItem):
        return None  # already set apart, to be refused on its own
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        found = first_non_finite(child)
        if found is not None:
            return found
    return None


class _NonFiniteNumbers:
    """What ``json.loads`` makes of ``NaN``, ``Infinity`` and overflowing numbers: markers, and a note."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found = False

    def constant(self, name: str) -> NonFinite:
        self.found = True
        return NonFinite(f"the non-standard number {name}")

    def finite_float(self, text: str) -> float | NonFinite:
        number = float(text)
        if number in (float("inf"), float("-inf")):
            self.found = True
            return NonFinite(f"the number {text[:40]}, which overflows to infinity")
        return number


def loads_strict(content: bytes | str, *, in_items: bool = False) -> Any:
    """
    Decode strict JSON: ``NaN``/``Infinity`` (and numbers too large for a float) are refused.

    Whatever is decoded here may end up in a trigger event, which must stay plain JSON. With
    ``in_items``, such a number inside one object of the envelope's ``data`` list is left there as
    a :class:`NonFinite` for the item check to refuse that item alone (a change feed skips one
    malformed lead instead of stalling on its page); anywhere else it refuses the answer.
    """
    numbers = _NonFiniteNumbers()
    payload = json.loads(content, parse_constant=numbers.constant, parse_float=numbers.finite_float)
    if numbers.found:  # rare: only then is anything walked
        if in_items and isinstance(payload, dict) and isinstance(payload.get("data"), list):
            data = payload["data"]
            for index, item in enumerate(data):
                what = first_non_finite(item) if isinstance(item, dict) else None
                if what is not None:
                    data[index] = NonFiniteItem(item)
                    data[index].what = what
        what = first_non_finite(payload)
        if what is not None:
            raise NotStrictJSONError(what)
    return payload


def _excerpt(content: bytes) -> str:
    return content[:80].decode("utf-8", "replace").replace("\n", " ").strip()


def decode_json(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    settings: Settings,
    *,
    in_items: bool = False,
) -> Any:
    """Decode a body as JSON, or raise :class:`OctanistResponseError` describing what came instead.

    ``in_items``: see :func:`loads_strict`.
    """
    if too_many_values(content):
        raise _too_many_values(call, status, headers)
    content_type = cap(headers.get("Content-Type") or "no content type", MAX_SERVER_WORD)
    try:
        return loads_strict(content, in_items=in_items)
    except RecursionError:
        # The JSON decoder recurses once per nesting level; no Octanist answer is that deep.
        raise OctanistResponseError(
            f"Octanist answered {call.label} with HTTP {status} and JSON nested too deeply to read "
            f"({content_type}, {len(content)} bytes: {_excerpt(content)!r})",
            status_code=status,
            request_id=request_id_of(None, headers),
            hint="The API may have changed; please report it with the request id.",
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        strict = isinstance(exc, NotStrictJSONError)
        what = f"JSON with {exc}" if strict else "a body that is not JSON"
        raise OctanistResponseError(
            f"Octanist answered {call.label} with HTTP {status} and {what} "
            f"({content_type}, {len(content)} bytes: {_excerpt(content)!r})",
            status_code=status,
            request_id=request_id_of(None, headers),
            hint=f"Check that the connection {settings.conn_id!r} points at the Octanist API "
            f"(base URL {settings.base_url}); a proxy or an outage page can answer like this."
            if not strict
            else "The API may have changed; please report it with the request id.",
        ) from None


def answer_too_large(call: Call, status: int, settings: Settings) -> OctanistResponseError:
    """The error for an answer whose body, decoded, grew past the connection's ``max_response_bytes``."""
    return OctanistResponseError(
        f"Octanist's answer to {call.label} (HTTP {status}) exceeded {settings.max_response_bytes} bytes "
        "once decoded, the connection's max_response_bytes; it was not read further",
        status_code=status,
        hint=f"Raise the extra max_response_bytes of connection {settings.conn_id!r} if answers this "
        "large are expected, or ask for less per request (a smaller page_size); otherwise something "
        "between here and Octanist is sending far more than an API answer.",
    )


def _too_many_values(call: Call, status: int, headers: Mapping[str, str]) -> OctanistResponseError:
    """The error for an answer that would decode into more values than any API answer holds."""
    return OctanistResponseError(
        f"Octanist's answer to {call.label} (HTTP {status}) holds more than {MAX_JSON_VALUES} JSON "
        "values (objects, arrays and their items), far more than any API answer; it was not parsed",
        status_code=status,
        request_id=request_id_of(None, headers),
        hint="Ask for less per request (a smaller page_size) if answers this large are expected; "
        "otherwise something between here and Octanist is sending far more than an API answer.",
    )


def undecodable_answer(call: Call, status: int, headers: Mapping[str, str]) -> OctanistResponseError:
    """The error for a body that is not what its ``Content-Encoding`` says (say, gzip that is not gzip)."""
    encoding = cap(headers.get("Content-Encoding") or "its content encoding", MAX_SERVER_WORD)
    return OctanistResponseError(
        f"Octanist's answer to {call.label} (HTTP {status}) could not be decoded: it is labelled "
        f"{encoding!r} but its body is not",
        status_code=status,
        request_id=request_id_of(None, headers),
        hint="Something between here and Octanist (a proxy, a gateway) may be rewriting answers; "
        "please report it with the request id if it persists.",
    )


def _check_envelope(call: Call, status: int, payload: dict[str, Any], request_id: str | None) -> None:
    """The envelope's ``success`` must be a real boolean and its ``meta`` an object, when present."""
    problem = None
    if "success" in payload and not isinstance(payload["success"], bool):
        problem = f"success of type {type(payload['success']).__name__} ({payload['success']!r:.40})"
    elif "meta" in payload and not isinstance(payload["meta"], dict):
        problem = f"meta of type {type(payload['meta']).__name__} ({payload['meta']!r:.40})"
    if problem is not None:
        raise OctanistResponseError(
            f"Octanist answered {call.label} with HTTP {status} and an envelope whose {problem}, "
            "not the documented type",
            status_code=status,
            request_id=request_id,
            hint="The API may have changed; please report it with the request id.",
        )


def unwrap(
    call: Call,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    settings: Settings,
    *,
    expect: type,
    legacy: Callable[[Any], Any] | None = None,
    in_items: bool = False,
) -> tuple[Any, Any]:
    """
    Return ``(data, payload)`` of a 2xx answer, checking the envelope and the type of ``data``.

    ``legacy`` maps a pre-envelope (1.0-era) body to the current ``data`` shape; it returns ``None``
    for a body it does not recognise. ``in_items``: see :func:`loads_strict`.
    """
    payload = decode_json(call, status, headers, content, settings, in_items=in_items)
    request_id = request_id_of(payload, headers)
    if isinstance(payload, dict):
        _check_envelope(call, status, payload, request_id)
    if isinstance(payload, dict) and payload.get("success") is False:
        # Octanist said "failed" with a 2xx: trust the words (the error code), not the status line.
        code, message, details = error_fields(payload)
        kind = kind_of_code(code)
        if kind is None:
            raise OctanistResponseError(
                f"Octanist answered {call.label} with HTTP {status} but success: false"
                + (f": {message}" if message else ""),
                status_code=status,
                code=code,
                request_id=request_id,
                hint="The API may have changed; please report it with the request id.",
            )
        raise make_error(
            kind,
            call,
            settings,
            status=status,
            code=code,
            message=message,
            request_id=request_id,
            details=details,
        )
    if isinstance(payload, dict) and "data" in payload:
        data = payload["data"]
    else:
        data = legacy(payload) if legacy is not None else None
        if data is None:
            raise OctanistResponseError(
                f"Octanist answered {call.label} without the documented 'data' field",
                status_code=status,
                request_id=request_id,
                hint="The API may have changed; please report it with the request id.",
            )
    if not isinstance(data, expect):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with data of type {type(data).__name__}, "
            f"expected {expect.__name__}",
            status_code=status,
            request_id=request_id,
        )
    return data, payload


def check_lead(lead: Any, call: Call, request_id: str | None) -> dict[str, Any]:
    """Make sure a lead object has the fields everything downstream relies on."""
    if not isinstance(lead, dict) or not isinstance(lead.get("id"), str) or not lead["id"]:
        raise OctanistResponseError(
            f"Octanist answered {call.label} with a lead that has no string 'id': {str(lead)[:120]!r}",
            request_id=request_id,
        )
    lead_id = cap(lead["id"], MAX_SERVER_WORD)  # quoted below; the lead keeps its id whole
    if isinstance(lead, NonFiniteItem):
        raise OctanistResponseError(
            f"Lead {lead_id} holds {lead.what}, which strict JSON (and a trigger event) cannot carry",
            request_id=request_id,
        )
    status = lead.get("status")
    if status is not None:
        if not isinstance(status, str):
            raise OctanistResponseError(
                f"Lead {lead_id} has a status of type {type(status).__name__}, expected a string",
                request_id=request_id,
            )
        canonical = status.strip().lower()
        canonical = LEGACY_ALIASES.get(canonical, canonical)
        if canonical in LEAD_STATUSES and canonical != status:
            lead = {**lead, "status": canonical}
    return dict(lead)


def check_same_lead(lead: dict[str, Any], lead_id: str, call: Call, request_id: str | None) -> None:
    """The lead of ``GET /leads/{id}`` must be the one asked for, or a sensor would judge another."""
    if lead["id"] != lead_id:
        raise OctanistResponseError(
            f"Octanist answered {call.label} with another lead ({lead['id']!r:.60})",
            request_id=request_id,
            hint="The answer was refused rather than taken for the lead asked for; please report it "
            "with the request id.",
        )


def check_row(row: Any, call: Call, request_id: str | None) -> dict[str, Any]:
    """Make sure a row of a report (ad spend) is an object."""
    if not isinstance(row, dict):
        raise OctanistResponseError(
            f"Octanist answered {call.label} with a row of type {type(row).__name__}, expected an object",
            request_id=request_id,
        )
    return dict(row)


def legacy_created(payload: Any) -> Any:
    """Map the 1.0-era create answer ``{"id": ...}`` to the current ``data``."""
    if isinstance(payload, dict) and isinstance(payload.get("id"), str):
        return {"id": payload["id"], "message": "Lead added"}
    return None


def legacy_updated(payload: Any) -> Any:
    """Map the 1.0-era update answer ``{"success": true, "leadId": ...}`` to the current ``data``."""
    if isinstance(payload, dict) and payload.get("success") is True and "leadId" in payload:
        return {"leadId": payload["leadId"], "leadsUpdated": 1, "message": "Lead updated successfully"}
    return None


def legacy_list(payload: Any) -> Any:
    """The 1.0-era list answer is a bare array of leads."""
    return payload if isinstance(payload, list) else None


def legacy_check(payload: Any) -> Any:
    """``POST /check`` answers ``{"success": true}`` without ``data``."""
    return {} if isinstance(payload, dict) and payload.get("success") is True else None
