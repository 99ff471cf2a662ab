"""
What a lead is to the fake: its fields, its statuses and how values and timestamps are written.

The fake restates the API instead of importing the client's code: it is an independent oracle.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from datetime import datetime, timezone
from typing import Any

LEAD_STATUSES: tuple[str, ...] = ("open", "qualified", "won", "lost")
"""Every status a lead can have, in lifecycle order."""
OPEN, QUALIFIED, WON, LOST = LEAD_STATUSES
SETTABLE_STATUSES: tuple[str, ...] = LEAD_STATUSES[1:]
"""Statuses ``PATCH /leads`` accepts; a lead cannot be moved back to ``open``."""
_LEGACY_STATUSES = {"win": WON}

CLICK_ID_FIELDS: tuple[str, ...] = (
    "gclid", "dclid", "wbraid", "gbraid", "ga4cid", "ga4sid", "fbc", "fbp",
    "msclkid", "ttclid", "twclid", "rdt_cid", "sccid", "epik", "li_fat_id",
)  # fmt: skip
UTM_FIELDS: tuple[str, ...] = ("utm_source", "utm_medium", "utm_campaign")
CONSENT_FIELDS: tuple[str, ...] = ("ad_storage", "ad_user_data", "analytics_storage", "ad_personalization")
TIMESTAMP_FIELDS: tuple[str, ...] = ("createdAt", "updatedAt", "qualifiedAt", "expiresAt")
LEAD_FIELDS: tuple[str, ...] = (
    "id", "name", "email", "phone", "note", "custom", "source", "website", "path", "labelId",
    "conversionName", "selectedConversionEventId", "status", "value", "lossReason",
    *CLICK_ID_FIELDS, *UTM_FIELDS, *CONSENT_FIELDS,
    "googleAdsCampaignId", "googleAdsCampaignName", "googleAdsAdGroupId", "googleAdsAdGroupName",
    "googleAdsAdId",
    *TIMESTAMP_FIELDS,
)  # fmt: skip
"""Every field of a stored lead, in the order the API returns them; absent values are ``None``."""
_LEGACY_LEAD_FIELDS: tuple[str, ...] = ("currency",)
"""Fields a caller may set on a lead that only exist when set (``currency`` is legacy-only)."""
KNOWN_LEAD_FIELDS = frozenset(LEAD_FIELDS) | frozenset(_LEGACY_LEAD_FIELDS)

PRECISIONS: tuple[str, ...] = ("ms", "us")
"""Timestamp precisions the fake can write: milliseconds (the API's) or microseconds."""


def normalize_status(status: Any, *, allowed: tuple[str, ...] = LEAD_STATUSES) -> str:
    """
    Return the canonical spelling of a status (case-insensitive, legacy ``win`` is ``won``).

    :param status: the status as given.
    :param allowed: the statuses accepted here; anything else raises ``ValueError``.
    """
    spelled = status.strip().lower() if isinstance(status, str) else None
    canonical = _LEGACY_STATUSES.get(spelled, spelled) if spelled is not None else None
    if canonical in allowed:
        return canonical
    if spelled is None:
        raise ValueError(f"A lead status must be a string, got {type(status).__name__}: {status!r}.")
    raise ValueError(f"Unknown lead status {status!r}: use one of {', '.join(allowed)}.")


def format_timestamp(moment: datetime, precision: str = "ms") -> str:
    """
    Render a point in time the way Octanist does: UTC with milliseconds, ``2026-01-15T10:30:00.000Z``.

    :param moment: the time; a naive datetime is taken as UTC.
    :param precision: ``ms`` (the API's format) or ``us`` for six fractional digits.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc)
    fraction = f"{moment.microsecond:06d}" if precision == "us" else f"{moment.microsecond // 1000:03d}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


def parse_timestamp(text: str) -> datetime:
    """
    Read an ISO 8601 date or date-time as aware UTC; raise ``ValueError`` if it is not one.

    :param text: e.g. ``2026-01-15T10:30:00.000Z``, ``2026-01-15T11:30:00+01:00`` or ``2026-01-15``;
        a value without offset is taken as UTC.
    """
    cleaned = text.strip()
    if cleaned[-1:] in ("Z", "z"):
        cleaned = cleaned[:-1] + "+00:00"
    moment = datetime.fromisoformat(cleaned)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_timestamp(value: datetime | str, what: str, precision: str = "ms") -> str:
    """Return the canonical timestamp string of a datetime or ISO string, or raise ``ValueError``."""
    if isinstance(value, datetime):
        return format_timestamp(value, precision)
    if isinstance(value, str):
        try:
            return format_timestamp(parse_timestamp(value), precision)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a datetime or an ISO 8601 string, got {value!r}.")


def new_id(prefix: str) -> str:
    """A fresh identifier the way Octanist writes them: ``prefix`` + 12 hex digits."""
    return prefix + uuid.uuid4().hex[:12]


def stringify_custom(custom: Any) -> Any:
    """Custom data is always stored and returned as a string; objects and lists become compact JSON."""
    if custom is None or isinstance(custom, str):
        return custom
    return json.dumps(custom, separators=(",", ":"))


def number(raw: Any, what: str) -> int | float:
    """A lead value: a finite number, or a string holding one; raise ``ValueError`` otherwise."""
    result: int | float | None = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        result = raw
    elif isinstance(raw, str):
        for read in (int, float):  # "12" stays an int, as JSON would give it
            with contextlib.suppress(ValueError):
                result = read(raw.strip())
                break
    if result is None:
        raise ValueError(f"{what} must be a number, got {raw!r}")
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError(f"{what} must be a finite number, got {raw!r}")
    return result
