"""
What can happen to one row of a write-back (``Outcome``), and the words the summary and report use.

The rows, the sender, the state and the tally all speak of outcomes; this module holds no rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping

UPDATED, VALID = "updated", "valid"
INVALID, NOT_FOUND, AMBIGUOUS, FAILED = "invalid", "not_found", "ambiguous", "failed"
NOT_SENT = "not_sent"
"""A valid row the run did not apply because it stopped first (a refused key, for one)."""
UNCHANGED = "unchanged"
"""With a state: the row equals what was last applied to its lead; not sent."""
UNKNOWN = "unknown"
"""With a state: a note that may or may not be on the lead; never sent again automatically."""
GIVEN_UP = "given_up"
"""With a state: a row carried over longer than ``carry_over_for``; no longer sent."""
NOT_APPLIED = (INVALID, NOT_FOUND, AMBIGUOUS, FAILED, UNKNOWN, GIVEN_UP)
"""The outcomes counted against ``max_failed_rows`` and ``max_failed_ratio``."""
SENT = (UPDATED, FAILED, UNKNOWN)
"""The outcomes of a row whose update reached Octanist or may have (a failed one's is unknown)."""


def json_value(value: Any) -> Any:
    """``value`` if JSON can hold it, else its text (a report line or a state must always encode)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Outcome:
    """What happened to one row (``row`` is ``None`` for a row carried over from an earlier run)."""

    row: int | None
    outcome: str
    lead: Mapping[str, Any] | None = None
    lead_id: str | None = None
    leads_updated: int | None = None
    error: Mapping[str, Any] | None = None
    carried_since: str | None = None
    """When a row carried over was first not applied."""
    may_have_applied: bool = field(default=False, compare=False)
    """A failed update that may have reached Octanist (a timeout, a reset, a 5xx)."""

    def line(self) -> dict[str, Any]:
        """The row's line in the report."""
        line: dict[str, Any] = {"row": self.row, "outcome": self.outcome}
        if self.carried_since is not None:
            line["carried_since"] = self.carried_since
        if self.lead is not None:
            line["lead"] = {name: json_value(value) for name, value in self.lead.items()}
        if self.lead_id is not None:
            line["lead_id"] = self.lead_id
        if self.leads_updated is not None:
            line["leads_updated"] = self.leads_updated
        if self.error is not None:
            line["error"] = dict(self.error)
        return line

    def describe(self) -> str:
        """The row in the error of a failed task: number, lead, outcome and reason."""
        lead = "".join(f" ({name} {value})" for name, value in (self.lead or {}).items())
        reason = str((self.error or {}).get("message", "")).rstrip(".")
        row = f"row {self.row}" if self.row is not None else "a row carried over"
        return f"{row}{lead}: {self.outcome}" + (f": {reason}" if reason else "")


Pending: TypeAlias = "tuple[int, dict[str, Any], dict[str, Any]]"
"""A valid row to send: ``(row, lead, arguments)``."""
Item: TypeAlias = "Outcome | Pending"
"""What the sender is given: a row's outcome known already, or ``(row, lead, arguments)`` to send."""


def error_of(exc: Exception) -> dict[str, Any]:
    """An error as a report line carries it: its text and, from Octanist, status, code and request id."""
    error = {
        "message": str(exc),
        "status": getattr(exc, "status_code", None),
        "code": getattr(exc, "code", None),
        "request_id": getattr(exc, "request_id", None),
    }
    return {k: v for k, v in error.items() if v is not None}


def not_sent(item: Item, reason: str) -> Outcome:
    """A row read after the run stopped: an invalid one stays invalid, a valid one is not sent."""
    if isinstance(item, Outcome):
        return item
    return Outcome(item[0], NOT_SENT, item[1], error={"message": reason})
