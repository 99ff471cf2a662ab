"""Lead status names: the one place that knows them.

The current API uses ``open``, ``qualified``, ``won`` and ``lost``. The legacy list filter spelled
``won`` as ``win``; it is accepted on input and always normalised to ``won``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

OPEN = "open"
QUALIFIED = "qualified"
WON = "won"
LOST = "lost"

LEAD_STATUSES: tuple[str, ...] = (OPEN, QUALIFIED, WON, LOST)
"""Every status a lead can have, in lifecycle order."""

SETTABLE_STATUSES: tuple[str, ...] = (QUALIFIED, WON, LOST)
"""Statuses ``PATCH /leads`` accepts; a lead cannot be moved back to ``open``."""

LEGACY_ALIASES: dict[str, str] = {"win": WON}


def normalize_status(status: str, *, allowed: Iterable[str] = LEAD_STATUSES) -> str:
    """
    Return the canonical spelling of a status, or raise ``ValueError`` naming the valid ones.

    Case and surrounding white space are ignored and the legacy ``win`` becomes ``won``.
    """
    allowed = tuple(allowed)
    if not isinstance(status, str):
        raise ValueError(f"A lead status must be a string, got {type(status).__name__}: {status!r}.")
    canonical = status.strip().lower()
    canonical = LEGACY_ALIASES.get(canonical, canonical)
    if canonical not in allowed:
        raise ValueError(f"Unknown lead status {status!r}: use one of {', '.join(allowed)}.")
    return canonical


def normalize_statuses(
    statuses: str | Iterable[str], *, allowed: Iterable[str] = LEAD_STATUSES
) -> tuple[str, ...]:
    """Normalise one status or several, keeping order and dropping repeats; empty is an error."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    allowed = tuple(allowed)
    result = tuple(dict.fromkeys(normalize_status(s, allowed=allowed) for s in statuses))
    if not result:
        raise ValueError(f"At least one lead status is needed: use one or more of {', '.join(allowed)}.")
    return result


def status_of(lead: Mapping[str, Any]) -> str | None:
    """A lead's canonical status, or ``None`` for a status this provider does not know."""
    status = lead.get("status")
    if not isinstance(status, str):
        return None
    try:
        return normalize_status(status)
    except ValueError:
        return None
