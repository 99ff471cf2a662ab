"""
The fake's in-memory leads and its clock: adding, reading and changing leads the way Octanist does.

``FakeOctanistServer`` is a ``LeadStore``; the endpoints read and write leads through it.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octanist.testing._envelope import NO_TIMESTAMP
from airflow_provider_octanist.testing._lead_fields import (
    KNOWN_LEAD_FIELDS,
    LEAD_FIELDS,
    LOST,
    OPEN,
    PRECISIONS,
    QUALIFIED,
    TIMESTAMP_FIELDS,
    WON,
    format_timestamp,
    new_id,
    normalize_status,
    number,
    parse_timestamp,
    stringify_custom,
    to_timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

_LEAD_TTL = timedelta(days=90)
_DEFAULT_SOURCE = "inbound"


class LeadStore:
    """
    Leads kept in memory, in insertion order, with the organisation settings the API depends on.

    :param bulk_updates: whether ``PATCH /leads`` by email/phone may update several leads at once
        (the organisation setting); without it such a request is answered ``409 CONFLICT``.
    :param timestamp_precision: ``ms`` (the API's format, default) or ``us``: how every timestamp
        the server writes (stored leads, ``meta.timestamp``) is rendered and how time filters compare.
    :param printed_precision: the precision answers print timestamps in, when it differs from the
        stored one: ``timestamp_precision="us", printed_precision="ms"`` is a server that stores
        microseconds, compares filters with them, and prints milliseconds.
    """

    def __init__(
        self,
        *,
        bulk_updates: bool = False,
        timestamp_precision: str = "ms",
        printed_precision: str | None = None,
    ) -> None:
        for name, value in (
            ("timestamp_precision", timestamp_precision),
            ("printed_precision", printed_precision),
        ):
            if value not in PRECISIONS and (name == "timestamp_precision" or value is not None):
                raise ValueError(f"{name} must be one of {', '.join(PRECISIONS)}, got {value!r}.")
        self.bulk_updates = bulk_updates
        self.timestamp_precision = timestamp_precision
        """``ms`` or ``us``; set it before adding leads (stored timestamps keep the format they got)."""
        self.printed_precision = printed_precision
        """``None`` (answers print what is stored), ``ms`` or ``us``."""
        self.lying_pagination = False
        """When true, list responses always claim ``hasMore`` and repeat the last page past the end."""
        self.page_cap: int | None = None
        """Serve at most this many leads per page whatever ``limit`` asks; ``meta.pagination`` says
        the ``limit`` it used, and ``totalPages``/``hasMore`` follow it."""
        self.clock_offset = timedelta(0)
        """How far the server's clock is from the real one: it stamps changes and ``meta.timestamp``."""
        self.refused_filters: frozenset[str] = frozenset()
        """Lead fields whose list filters (``createdAt[lt]``, ...) are answered 400 INVALID_FILTER, as
        by a deployment that does not support them."""
        self.stale_timestamp: str | None = None
        """When set, every success answer's ``meta.timestamp`` is this text, as a stuck clock or cache."""
        self.omit_timestamp = False
        """When true, success answers carry no ``meta.timestamp`` (a proxy that rewrites ``meta``)."""
        self.clock_precision: str | None = None
        """``meta.timestamp``'s precision when it differs from the printed one (``ms`` over stamps
        printed in ``us``: a clock read by another layer than the one that stamps leads)."""
        self.gte_as_gt = False
        """When true, every ``[gte]`` time filter is applied as ``[gt]``, as a server that confuses them."""
        self.ignore_page = False
        """When true, the ``page`` parameter is ignored: every page of a listing is its first."""
        self._listing_changes: dict[int, list[Callable[[], Any]]] = {}
        self._counted_changes: list[tuple[int, Callable[[], Any]]] = []
        self._listings = 0  # GET /leads answered so far, for ``change_during_listing(request=...)``
        self.strict_dates = False
        """When true, a time filter finer than milliseconds (the documented format) is ``INVALID_DATE``."""
        self.leads_limit = 500
        """The plan's lead limit reported by ``POST /stats`` (``usage.leadsLimit``)."""
        self._lock = threading.RLock()
        self._leads: dict[str, dict[str, Any]] = {}
        self._last_stamp: datetime | None = None

    def add_lead(self, **fields: Any) -> dict[str, Any]:
        """
        Store a lead and return a copy of it; every field not given gets the API's default.

        Defaults: id ``lead_`` + 12 hex, status ``open``, source ``inbound``, ``createdAt`` now,
        ``updatedAt`` = ``createdAt``, ``expiresAt`` = ``createdAt`` + 90 days, everything else
        ``None``; ``qualifiedAt`` is stamped for a lead added as ``qualified``. A lead may be dated
        in the future (``updatedAt`` ahead of the server's clock), as a lead with a bad clock would be.

        :param fields: any lead field (see ``LEAD_FIELDS``, plus legacy ``currency``). Timestamps
            may be datetimes or ISO strings; ``custom`` given as dict/list is stored as JSON text;
            ``status`` accepts the legacy ``win``.
        """
        self._check_fields(fields)
        values = self._clean_fields(fields)
        with self._lock:
            lead_id = values.pop("id", None) or self._unused_id()
            if lead_id in self._leads:
                raise ValueError(f"A lead with id {lead_id!r} already exists.")
            created = values.pop("createdAt", None) or self.stamp()
            lead: dict[str, Any] = dict.fromkeys(LEAD_FIELDS)
            lead.update(id=lead_id, source=_DEFAULT_SOURCE, status=OPEN, createdAt=created)
            lead["updatedAt"] = created
            lead["expiresAt"] = format_timestamp(
                parse_timestamp(created) + _LEAD_TTL, self.timestamp_precision
            )
            if values.get("status") == QUALIFIED and "qualifiedAt" not in values:
                lead["qualifiedAt"] = values.get("updatedAt", created)
            lead.update(values)
            self._leads[lead_id] = lead
            return dict(lead)

    def add_leads(self, n: int, **fields: Any) -> list[dict[str, Any]]:
        """
        Store ``n`` leads with the same fields and fresh ids; return copies in insertion order.

        :param n: how many leads to add.
        :param fields: fields for every lead, as for ``add_lead`` (``id`` is not allowed).
        """
        if "id" in fields:
            raise TypeError("add_leads() gives each lead its own id; use add_lead(id=...) for a chosen id.")
        return [self.add_lead(**fields) for _ in range(n)]

    def lead(self, lead_id: str) -> dict[str, Any]:
        """
        Return a copy of one stored lead; raise ``KeyError`` if there is none with that id.

        :param lead_id: the lead's id.
        """
        with self._lock:
            return dict(self._stored(lead_id))

    @property
    def leads(self) -> list[dict[str, Any]]:
        """Copies of every stored lead, in insertion order."""
        with self._lock:
            return [dict(lead) for lead in self._leads.values()]

    def set_status(
        self,
        lead_id: str,
        status: str,
        *,
        value: float | None = None,
        loss_reason: str | None = None,
        at: datetime | str | None = None,
    ) -> dict[str, Any]:
        """
        Change a lead's status as Octanist would and return a copy of the lead.

        Entering ``qualified`` stamps ``qualifiedAt``; ``lost`` keeps ``loss_reason`` (other statuses
        clear ``lossReason``); ``updatedAt`` becomes now, or ``at``.

        :param lead_id: the lead's id.
        :param status: the new status, ``open`` and legacy ``win`` included.
        :param value: a new monetary value, or ``None`` to keep the current one.
        :param loss_reason: why the lead was lost (only kept with ``lost``).
        :param at: the ``updatedAt`` to record instead of now, e.g. to give leads equal timestamps.
        """
        canonical = normalize_status(status)
        amount = None if value is None else number(value, "value")
        stamp = None if at is None else to_timestamp(at, "at", self.timestamp_precision)
        with self._lock:
            lead = self._stored(lead_id)
            self.apply_change(lead, stamp or self.stamp(), canonical, amount, loss_reason)
            return dict(lead)

    def update_lead(self, lead_id: str, *, at: datetime | str | None = None, **fields: Any) -> dict[str, Any]:
        """
        Edit any fields of a lead directly (no status rules) and return a copy of it.

        ``updatedAt`` becomes now, or ``at``, unless ``updatedAt`` itself is among the fields.

        :param lead_id: the lead's id.
        :param at: the ``updatedAt`` to record instead of now.
        :param fields: lead fields to overwrite, as for ``add_lead`` (``id`` cannot change).
        """
        self._check_fields(fields)
        if "id" in fields:
            raise TypeError("A lead's id cannot be changed.")
        values = self._clean_fields(fields)
        stamp = None if at is None else to_timestamp(at, "at", self.timestamp_precision)
        with self._lock:
            lead = self._stored(lead_id)
            lead.update(values)
            if "updatedAt" not in values:
                lead["updatedAt"] = stamp or self.stamp()
            return dict(lead)

    @contextmanager
    def at_once(self) -> Iterator[None]:
        """
        Make the changes of a ``with`` block visible to requests all together, as one transaction would.

        Requests that arrive meanwhile wait until the block ends, so a poll sees all of the block's
        changes or none of them. Do not wait for the server inside the block: it cannot answer.
        """
        with self._lock:
            yield

    def set_statuses(
        self,
        lead_ids: Iterable[str],
        status: str,
        *,
        value: float | None = None,
        at: datetime | str | None = None,
    ) -> list[dict[str, Any]]:
        """
        Change the status of several leads in one bulk update: one ``updatedAt`` for all, seen at once.

        As a bulk edit in Octanist's web app (or a bulk ``PATCH``) does: every lead gets the same
        stamp, and no request sees some of the changes without the others. Returns copies, in order.

        :param lead_ids: the leads' ids; every one must exist.
        :param status: the new status, as for ``set_status``.
        :param value: a new monetary value for each, or ``None`` to keep theirs.
        :param at: the one ``updatedAt`` to record instead of now.
        """
        canonical = normalize_status(status)
        amount = None if value is None else number(value, "value")
        stamp = None if at is None else to_timestamp(at, "at", self.timestamp_precision)
        with self._lock:
            leads = [self._stored(lead_id) for lead_id in lead_ids]
            stamp = stamp or self.stamp()
            for lead in leads:
                self.apply_change(lead, stamp, canonical, amount, None)
            return [dict(lead) for lead in leads]

    def delete_lead(self, lead_id: str) -> None:
        """
        Remove a lead, as a person deleting it in Octanist's web app would (the API has no DELETE).

        :param lead_id: the lead's id; ``KeyError`` when there is none.
        """
        with self._lock:
            self._stored(lead_id)
            del self._leads[lead_id]

    def change_during_listing(
        self, change: Callable[[], Any], *, page: int = 2, request: int | None = None
    ) -> None:
        """
        Run ``change()`` once, right before the server answers the next ``GET /leads`` for ``page``.

        The answer (and every later one) sees the change; earlier pages of the same walk did not:
        a listing that shifts under a client paging through it.

        :param change: what to do, e.g. ``lambda: server.set_status(lead_id, "lost")``.
        :param page: the page number whose next request runs it first.
        :param request: instead of a page number, the ``GET /leads`` that runs it, counted from
            1 from now, whatever page it asks for: for a client that asks for page 1 every time.
        """
        for name, given in (("page", page), ("request", request)):
            if (given is not None or name == "page") and (
                not isinstance(given, int) or isinstance(given, bool) or given < 1
            ):
                raise ValueError(f"{name} must be a {name} number (1 or more), got {given!r}.")
        with self._lock:
            if request is None:
                self._listing_changes.setdefault(page, []).append(change)
            else:
                self._counted_changes.append((self._listings + request, change))

    def _listing_page(self, page: int) -> None:
        """Run the changes waiting for a listing of ``page`` (the list endpoint calls this)."""
        with self._lock:
            self._listings += 1
            due = [change for at, change in self._counted_changes if at == self._listings]
            self._counted_changes = [(at, c) for at, c in self._counted_changes if at != self._listings]
            for change in [*self._listing_changes.pop(page, []), *due]:
                change()

    def now(self) -> datetime:
        """
        The server's clock: the real time plus ``clock_offset``, never before a stamp it gave.

        Stamps never repeat, so leads added faster than one a millisecond are stamped ahead of the
        real time; a clock behind them would date a later change before an earlier one.
        """
        moment = datetime.now(timezone.utc) + self.clock_offset
        with self._lock:
            last = self._last_stamp
        return moment if last is None or moment > last else last

    def server_time(self) -> str:
        """
        ``meta.timestamp`` of an answer: the server's clock as it prints it, or ``stale_timestamp``;
        ``NO_TIMESTAMP`` (leave it out) under ``omit_timestamp``.
        """
        if self.omit_timestamp:
            return NO_TIMESTAMP
        if self.stale_timestamp is not None:
            return self.stale_timestamp
        precision = self.clock_precision or self.printed_precision or self.timestamp_precision
        return format_timestamp(self.now(), precision)

    def printed(self, lead: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of a stored lead as answers show it: its timestamps in ``printed_precision``."""
        shown = dict(lead)
        if self.printed_precision is not None and self.printed_precision != self.timestamp_precision:
            for name in TIMESTAMP_FIELDS:
                if shown.get(name) is not None:
                    shown[name] = format_timestamp(parse_timestamp(shown[name]), self.printed_precision)
        return shown

    def stamp(self) -> str:
        """The server clock as a timestamp string: UTC, never repeating or going back."""
        step = timedelta(microseconds=1) if self.timestamp_precision == "us" else timedelta(milliseconds=1)
        with self._lock:
            moment = self.now()
            if self.timestamp_precision != "us":
                moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
            if self._last_stamp is not None and moment <= self._last_stamp:
                moment = self._last_stamp + step
            self._last_stamp = moment
            return format_timestamp(moment, self.timestamp_precision)

    def apply_change(
        self,
        lead: dict[str, Any],
        stamp: str,
        status: str | None,
        value: float | None,
        loss_reason: str | None,
        *,
        also_qualified: bool = False,
    ) -> None:
        """Apply a status/value change to a stored lead the way Octanist does."""
        if status is not None:
            previous = lead["status"]
            lead["status"] = status
            entering_qualified = status == QUALIFIED and previous != QUALIFIED
            won_also_qualified = status == WON and also_qualified
            if entering_qualified or (
                (status == QUALIFIED or won_also_qualified) and lead["qualifiedAt"] is None
            ):
                lead["qualifiedAt"] = stamp
            if status != LOST:
                lead["lossReason"] = None
            elif previous != LOST:
                lead["lossReason"] = loss_reason
        if loss_reason is not None and lead["status"] == LOST:
            lead["lossReason"] = loss_reason
        if value is not None:
            lead["value"] = value
        lead["updatedAt"] = stamp

    def _unused_id(self) -> str:
        while True:
            lead_id = new_id("lead_")
            if lead_id not in self._leads:
                return lead_id

    def _stored(self, lead_id: str) -> dict[str, Any]:
        try:
            return self._leads[lead_id]
        except KeyError:
            raise KeyError(f"No lead with id {lead_id!r} in the fake Octanist server.") from None

    @staticmethod
    def _check_fields(fields: Mapping[str, Any]) -> None:
        unknown = sorted(set(fields) - KNOWN_LEAD_FIELDS)
        if unknown:
            raise TypeError(
                f"Unknown lead field(s) {', '.join(unknown)}; lead fields are {', '.join(LEAD_FIELDS)}."
            )

    def _clean_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise caller-given lead fields: timestamps, status, custom and value."""
        values = dict(fields)
        for name in TIMESTAMP_FIELDS:
            if values.get(name) is not None:
                values[name] = to_timestamp(values[name], name, self.timestamp_precision)
        if "status" in values:
            values["status"] = normalize_status(values["status"])
        if "custom" in values:
            values["custom"] = stringify_custom(values["custom"])
        if values.get("value") is not None:
            values["value"] = number(values["value"], "value")
        return values
