"""
Operators for Octanist leads: fetch one, list many, create one and change one.

Each operator is a thin sentence of intent over
:class:`~airflow_provider_octanist.hooks.octanist.OctanistHook`: the hook knows URLs, the envelope,
pagination and retries. The hook is imported only when a task runs, so DAG files that import these
operators stay cheap to parse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

try:  # Airflow 3: the Task SDK, which every DAG file has loaded already
    from airflow.sdk import BaseOperator
except ImportError:  # Airflow 2.11 (where common.compat's sdk module would look next)
    from airflow.models.baseoperator import BaseOperator
# Not through common.compat's sdk module: its import (three modules) cost more than this module.

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._checks import check_conn_id, whole_number
from airflow_provider_octanist._lead_vocabulary import CREATE_FIELDS, LIST_FILTERS, UPDATE_FIELDS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octanist.hooks.octanist import OctanistHook
    from airflow_provider_octanist.types import Lead

__all__ = [
    "OctanistCreateLeadOperator",
    "OctanistGetLeadOperator",
    "OctanistListLeadsOperator",
    "OctanistUpdateLeadOperator",
]


class _OctanistOperator(BaseOperator):  # type: ignore[misc]
    """Connection handling shared by the Octanist operators."""

    ui_color = "#f4ecfb"

    def __init__(self, *, octanist_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.octanist_conn_id = check_conn_id(octanist_conn_id)

    @cached_property
    def hook(self) -> OctanistHook:
        """The hook of ``octanist_conn_id`` (created on first use, inside the running task)."""
        from airflow_provider_octanist.hooks.octanist import OctanistHook

        return OctanistHook(octanist_conn_id=self.octanist_conn_id)


class OctanistGetLeadOperator(_OctanistOperator):
    """
    Fetch one Octanist lead and return it (pushed to XCom as a JSON-compatible dict).

    .. code-block:: python

        lead = OctanistGetLeadOperator(task_id="get_lead", lead_id="{{ params.lead_id }}")

    :param lead_id: the lead's id, e.g. ``lead_abc123`` (templated).
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = ("lead_id", "octanist_conn_id")

    def __init__(self, *, lead_id: str, octanist_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        self.lead_id = lead_id

    def execute(self, context: Context) -> Lead:
        with self.hook as hook:
            lead = hook.get_lead(self.lead_id)
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

        self.log.info("Lead %s is %s.", lead["id"], cap(str(lead.get("status")), MAX_SERVER_WORD))
        return lead


class _LeadListing(_OctanistOperator):
    """
    The filter arguments of a lead listing, checked and kept once for every operator that lists leads
    (``OctanistListLeadsOperator`` and the leads export): the named filters are templated, the rest
    go through ``extra_filters``. An operator that lists leads takes it as its first base; the
    arguments that are not filters go on to the next ``__init__``.
    """

    NAMED_FILTERS: tuple[str, ...] = (
        "status",
        "updated_gte",
        "updated_lt",
        "created_gte",
        "created_lt",
        "search",
        "sort",
        "fields",
    )

    def __init__(
        self,
        *,
        status: str | None = None,
        updated_gte: Any = None,
        updated_lt: Any = None,
        created_gte: Any = None,
        created_lt: Any = None,
        search: str | None = None,
        sort: str | None = None,
        fields: str | Sequence[str] | None = None,
        page_size: int = 100,
        max_results: int | None = None,
        extra_filters: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        whole_number(page_size, "page_size", low=1, high=100)
        if max_results is not None:
            whole_number(max_results, "max_results", low=1)
        if extra_filters is not None:
            if not isinstance(extra_filters, Mapping):
                raise ValueError(
                    f"extra_filters must be a dict of filters, got {type(extra_filters).__name__}."
                )
            unknown = sorted(set(extra_filters) - set(LIST_FILTERS))
            if unknown:
                raise ValueError(
                    f"Unknown lead filter(s) {', '.join(map(repr, unknown))} in extra_filters: "
                    f"use {', '.join(sorted(LIST_FILTERS))}."
                )
        self.status = status
        self.updated_gte = updated_gte
        self.updated_lt = updated_lt
        self.created_gte = created_gte
        self.created_lt = created_lt
        self.search = search
        self.sort = sort
        self.fields = fields
        self.page_size = page_size
        self.max_results = max_results
        self.extra_filters = dict(extra_filters) if extra_filters is not None else None

    def _filters(self) -> dict[str, Any]:
        """The rendered filters as ``iter_leads`` keywords."""
        named = {name: getattr(self, name) for name in self.NAMED_FILTERS}
        # An empty rendered template (e.g. an unset param) means "no such filter", not "match ''".
        filters = {name: value for name, value in named.items() if value is not None and value != ""}
        for name, value in (self.extra_filters or {}).items():
            if name in filters:
                raise ValueError(f"Filter {name!r} is given both as an argument and in extra_filters.")
            filters[name] = value
        filters["page_size"] = self.page_size
        return filters


class OctanistListLeadsOperator(_LeadListing):
    """
    List the leads that match filters, across every page, and return them as a list of dicts.

    The result goes to XCom, so keep it bounded: filter by time window or status, select ``fields``
    and set ``max_results``. For very large exports stream with ``OctanistHook.iter_leads`` in a task.

    .. code-block:: python

        updated = OctanistListLeadsOperator(
            task_id="leads_updated_in_interval",
            updated_gte="{{ data_interval_start }}",
            updated_lt="{{ data_interval_end }}",
            sort="updatedAt:asc",
        )

    :param status: only leads with this status (``open``, ``qualified``, ``won``, ``lost``) (templated).
    :param updated_gte: only leads updated at or after this moment: datetime or ISO 8601 (templated).
    :param updated_lt: only leads updated before this moment (templated).
    :param created_gte: only leads created at or after this moment (templated).
    :param created_lt: only leads created before this moment (templated).
    :param search: free text matched against name, email and phone (templated).
    :param sort: order as ``field:direction``, e.g. ``updatedAt:asc`` (templated).
    :param fields: only these lead fields (``id`` is always included) (templated).
    :param page_size: leads per request, 1-100.
    :param max_results: stop after this many leads; ``None`` reads every page.
    :param extra_filters: further keyword filters of ``OctanistHook.iter_leads``, e.g.
        ``{"source": "api", "value_gte": 100, "filters": {"gclid[exists]": True}}`` (templated).
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = (*_LeadListing.NAMED_FILTERS, "extra_filters", "octanist_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"extra_filters": "json"}

    def execute(self, context: Context) -> list[Lead]:
        with self.hook as hook:
            leads = hook.list_leads(max_results=self.max_results, **self._filters())
        self.log.info("Octanist returned %d lead(s).", len(leads))
        return leads


class OctanistCreateLeadOperator(_OctanistOperator):
    """
    Create a lead and return its id (pushed to XCom).

    New leads start ``open``; set status and value afterwards with
    :class:`OctanistUpdateLeadOperator`. Creating is not idempotent: a task retry creates another
    lead, and the hook never replays a request that may already have reached Octanist.

    .. code-block:: python

        lead_id = OctanistCreateLeadOperator(
            task_id="create_lead",
            name="{{ params.name }}",
            email="{{ params.email }}",
            lead_fields={"utm_source": "airflow", "website": "https://example.com"},
        ).output

    :param name: the contact's name (templated).
    :param email: the contact's email (templated).
    :param phone: the contact's phone number (templated).
    :param custom: custom data, a JSON string or a dict/list that Octanist stores as JSON text (templated).
    :param note: a free-text note (templated).
    :param lead_fields: further documented lead fields such as ``website``, ``path``, ``utm_source``,
        click ids (``gclid``, ...), consent flags or ``sessionId`` (templated values).
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = (
        "name",
        "email",
        "phone",
        "custom",
        "note",
        "lead_fields",
        "octanist_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"custom": "json", "lead_fields": "json"}

    def __init__(
        self,
        *,
        name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        custom: str | Mapping[str, Any] | list[Any] | None = None,
        note: str | None = None,
        lead_fields: Mapping[str, Any] | None = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        extra = dict(lead_fields or {})
        own = {"name", "email", "phone", "custom", "note"}
        unknown = sorted(set(extra) - (CREATE_FIELDS - own))
        if unknown:
            raise ValueError(
                f"Unknown or duplicated lead field(s) {', '.join(map(repr, unknown))} in lead_fields: "
                f"use {', '.join(sorted(CREATE_FIELDS - own))} (name, email, phone, custom and note are "
                "arguments of their own)."
            )
        if all(v is None for v in (name, email, phone, custom)):
            raise ValueError("A new lead needs at least one of name, email, phone or custom.")
        self.name = name
        self.email = email
        self.phone = phone
        self.custom = custom
        self.note = note
        self.lead_fields = extra

    def execute(self, context: Context) -> str:
        fields = {"name": self.name, "email": self.email, "phone": self.phone, "custom": self.custom}
        fields["note"] = self.note
        # Empty rendered templates mean "not given": Octanist should not store empty strings.
        given = {k: v for k, v in {**fields, **self.lead_fields}.items() if v is not None and v != ""}
        with self.hook as hook:
            created = hook.create_lead(**given)
        lead_id: str = created["id"]
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

        self.log.info("Created Octanist lead %s.", cap(lead_id, MAX_SERVER_WORD))
        return lead_id


class OctanistUpdateLeadOperator(_OctanistOperator):
    """
    Change the status, value or note of a lead (or of every lead matching an email/phone).

    The lead is found by ``lead_id``, else ``email``, else ``phone``. Setting the status a lead
    already has is harmless, so marking a lead ``won`` twice (e.g. on a task retry) changes nothing.
    Returns Octanist's answer, ``{"leadId": ..., "leadsUpdated": n, "message": ...}``.

    .. code-block:: python

        won = OctanistUpdateLeadOperator(
            task_id="mark_won",
            lead_id="{{ ti.xcom_pull(task_ids='create_lead') }}",
            status="won",
            value=1200,
        )

    :param lead_id: the lead's id (templated).
    :param email: find the lead(s) by email instead (templated).
    :param phone: find the lead(s) by phone number instead (templated).
    :param status: the new status: ``qualified``, ``won`` or ``lost`` (templated).
    :param value: the lead's monetary value (templated; a rendered string is read as a number).
    :param note: a note to attach (templated).
    :param loss_reason: why the lead was lost; only with ``status="lost"`` (templated).
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = (*UPDATE_FIELDS, "octanist_conn_id")

    def __init__(
        self,
        *,
        lead_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        status: str | None = None,
        value: float | str | None = None,
        note: str | None = None,
        loss_reason: str | None = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        if lead_id is None and email is None and phone is None:
            raise ValueError(
                "OctanistUpdateLeadOperator needs lead_id, email or phone to say which lead to change."
            )
        if status is None and value is None and note is None and loss_reason is None:
            raise ValueError(
                "OctanistUpdateLeadOperator has nothing to change: pass status, value, note or loss_reason."
            )
        self.lead_id = lead_id
        self.email = email
        self.phone = phone
        self.status = status
        self.value = value
        self.note = note
        self.loss_reason = loss_reason

    def execute(self, context: Context) -> dict[str, Any]:
        def given(value: Any) -> Any:
            # An empty rendered template (e.g. an optional param left blank) means "not given".
            return None if value == "" else value

        with self.hook as hook:
            result = hook.update_lead(**{name: given(getattr(self, name)) for name in UPDATE_FIELDS})
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

        updated, lead_id = (cap(str(result.get(key)), MAX_SERVER_WORD) for key in ("leadsUpdated", "leadId"))
        self.log.info("Octanist updated %s lead(s) (lead %s).", updated, lead_id)
        return result


class OctanistGetStatsOperator(_OctanistOperator):
    """
    Fetch the dashboard statistics for a period and return them (pushed to XCom).

    The answer has ``usage`` (leads used and the plan's limit), ``leads`` (``total``, ``byStatus``,
    ``bySource``) and ``conversion`` (rates and values). The days are ``start_day`` and ``end_day``,
    not ``start_date``/``end_date``, which every operator already has for its own schedule.

    .. code-block:: python

        stats = OctanistGetStatsOperator(task_id="stats", start_day="{{ ds }}", end_day="{{ ds }}")

    :param period: ``current`` (default), ``previous`` or ``custom``; days imply ``custom`` (templated).
    :param start_day: first day of a custom period, ``YYYY-MM-DD`` or a date (templated).
    :param end_day: last day of a custom period, inclusive (templated).
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = ("period", "start_day", "end_day", "octanist_conn_id")

    def __init__(
        self,
        *,
        period: str | None = None,
        start_day: Any = None,
        end_day: Any = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        self.period = period
        self.start_day = start_day
        self.end_day = end_day

    def execute(self, context: Context) -> dict[str, Any]:
        # An empty rendered template (e.g. an optional param left blank) means "not given".
        period, start, end = (None if v == "" else v for v in (self.period, self.start_day, self.end_day))
        with self.hook as hook:
            stats = hook.get_stats(period, start_date=start, end_date=end)
        from airflow_provider_octanist._redact import MAX_SERVER_WORD, cap

        leads = stats.get("leads", {})
        if not isinstance(leads, Mapping):
            from airflow_provider_octanist.exceptions import OctanistResponseError

            raise OctanistResponseError(
                f"Octanist answered POST /stats with 'leads' that is not an object "
                f"(a {type(leads).__name__}: {cap(repr(leads), MAX_SERVER_WORD)})",
                hint="The API may have changed; please report it.",
            )
        total = cap(str(leads.get("total")), MAX_SERVER_WORD)
        self.log.info("Octanist statistics: %s lead(s) in the period.", total)
        return stats


__all__ += ["OctanistGetStatsOperator"]
