"""Hooks for the Octanist REST API: :class:`OctanistHook` (requests) and its async twin (httpx)."""

from __future__ import annotations

import asyncio
from asyncio import sleep as async_sleep
from time import monotonic, sleep
from typing import TYPE_CHECKING, Any, cast

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._checks import whole_number
from airflow_provider_octanist._deadline import within
from airflow_provider_octanist.exceptions import OctanistError, OctanistResponseError
from airflow_provider_octanist.hooks._base import _OctanistHookBase
from airflow_provider_octanist.hooks._transport.share import _ClientShare
from airflow_provider_octanist.lineage import AD_SPEND, LEADS

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    import httpx
    import requests
    from typing_extensions import Unpack

    from airflow_provider_octanist.types import DateLike, Lead, LeadFilters, LeadUpdate, NewLead

__all__ = ["OctanistAsyncHook", "OctanistHook"]

DEFAULT_POOL_SIZE = 10
"""Connections the sync hook keeps open to Octanist unless told otherwise."""

# requests and httpx are imported where first used: operators import this module while DAG files
# are parsed, and a sync task never needs httpx (nor a trigger requests). The hooks wait between
# retries with the module-level ``sleep``/``async_sleep``, which tests replace to record the waits.


class OctanistHook(_OctanistHookBase):
    """
    Talk to the Octanist REST API over one pooled ``requests.Session``.

    The API key is the connection's password and travels only in the ``X-API-KEY`` header. Every
    request has a connect and a read timeout, and each attempt a total deadline of both together
    (``Settings.total_timeout``); 429, 5xx, connection errors and timeouts are retried
    with exponential backoff and jitter, honouring ``Retry-After``; 4xx answers are never retried,
    and creating a lead is never replayed once it may have reached Octanist.

    :param octanist_conn_id: Airflow connection id of type ``octanist``.
    :param timeout: read timeout in seconds; overrides the connection's ``timeout`` extra (default 30).
    :param connect_timeout: connect timeout in seconds; overrides the ``connect_timeout`` extra (default 10).
    :param max_retries: retries of a failed request; overrides the ``max_retries`` extra (default 3).
    :param pool_size: connections kept open to Octanist (default 10); at least the number of
        threads that share this hook, so none of them waits for a connection or opens a new one.
    :param on_rate_limited: called (from the calling thread) with the ``Retry-After`` seconds, or
        ``None``, each time Octanist answers 429; the request itself is retried as usual.
    """

    _session: requests.Session | None = None

    def __init__(
        self,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        on_rate_limited: Callable[[float | None], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id, **kwargs)
        self.pool_size = whole_number(pool_size, "pool_size", low=1)
        self.on_rate_limited = on_rate_limited

    # The connection form for Airflow 2.11-3.1, which reads it from the class registered for the
    # connection type itself (not from a base class); Airflow 3.2+ reads the declarative form from
    # get_provider_info() instead. Both come from the same definitions.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the custom behaviour of the standard connection-form fields."""
        from airflow_provider_octanist.hooks._connection_form import ui_field_behaviour

        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the extra connection-form widgets (timeouts, retries, plain-http opt-in)."""
        from airflow_provider_octanist.hooks._connection_form import form_widgets

        return form_widgets()

    @property
    def settings(self) -> api.Settings:
        """The connection's settings, read on first use."""
        if self._settings is None:
            conn = self.get_connection(self.octanist_conn_id)
            return self._settings_from(conn, conn.extra_dejson)
        return self._settings

    def get_conn(self) -> requests.Session:
        """Return the hook's pooled ``requests.Session`` (created on first use)."""
        if self._session is None:
            from airflow_provider_octanist.hooks._sync_body import new_session

            self._session = new_session(self.settings, self.pool_size)
        return self._session

    def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> OctanistHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: api.Call, deadline: float | None = None) -> api.Answer:
        """
        Send ``call``, retrying as :class:`_api.Attempts` allows; return the 2xx answer.

        :param deadline: give up by this moment (``time.time()`` seconds), checked between the
            pieces of an answer; each attempt also ends after the settings' ``total_timeout``.
        """
        with self._scrubbed():
            return self._send_unscrubbed(call, deadline)

    def _send_unscrubbed(self, call: api.Call, deadline: float | None) -> api.Answer:
        import requests

        from airflow_provider_octanist.hooks._failures import requests_failure
        from airflow_provider_octanist.hooks._sync_body import DeadlinePassedError, exchange

        settings = self.settings
        session = self.get_conn()
        attempts = api.Attempts(call, settings, self.log, self.on_rate_limited, deadline=deadline)
        while True:
            started = monotonic()
            limit = attempts.limit()
            try:
                status, headers, content = exchange(session, call, settings, started + limit)
            except DeadlinePassedError:
                raise attempts.past_deadline(limit) from None
            except requests.exceptions.RequestException as exc:
                sleep(attempts.wait_after_failure(requests_failure(exc)))
                continue
            self.log.debug("Octanist %s -> %d in %.0f ms", call.label, status, (monotonic() - started) * 1000)
            if 200 <= status < 300:
                return api.Answer(status, headers, content)
            sleep(attempts.wait_after_status(status, headers, content))

    def _call(
        self, call: api.Call, *, expect: type, legacy: Any = None, deadline: float | None = None
    ) -> tuple[Any, str | None]:
        answer = self._send(call, deadline)
        with self._scrubbed():
            return self._read(call, answer, self.settings, expect=expect, legacy=legacy)

    def _pages(self, listing: api.Listing, max_results: int | None, dataset: str) -> Iterator[dict[str, Any]]:
        settings = self.settings
        paging = api.Paging(listing, settings, max_results)
        reported = False
        while (call := paging.next_call()) is not None:
            answer = self._send(call)
            with self._scrubbed():
                items = paging.read(call, answer)
            if not reported:  # once per listing, not once per page
                self._report_lineage(settings, dataset)
                reported = True
            yield from items

    # -- the API --------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the API key with ``POST /check`` (the UI's Test button, ``airflow connections test``)."""
        try:
            settings = self.settings
            self._call(api.Call("POST", "/check"), expect=dict, legacy=api.legacy_check)
        except (OctanistError, ValueError) as exc:
            return False, self._scrub_text(str(exc))
        return self._connection_ok(settings)

    def get_lead(self, lead_id: str, *, deadline: float | None = None) -> Lead:
        """
        Return one lead (the ``data`` object of ``GET /leads/{id}``).

        :param lead_id: the lead's id, e.g. ``lead_abc123``.
        :param deadline: give up by this moment (``time.time()`` seconds), even mid-request, with
            :class:`~airflow_provider_octanist.exceptions.OctanistTimeoutError`.
        :raises OctanistNotFoundError: when no lead has that id.
        :raises OctanistResponseError: when Octanist answers with another lead.
        """
        call = self._lead_call(lead_id)
        data, request_id = self._call(call, expect=dict, deadline=deadline)
        with self._scrubbed():
            lead = self._the_lead(lead_id, call, data, request_id)
        self._report_lineage(self.settings, LEADS)
        return lead

    def list_leads_page(
        self,
        page: int = 1,
        *,
        skip_malformed: bool = False,
        deadline: float | None = None,
        exact_time: bool = False,
        **filters: Unpack[LeadFilters],
    ) -> api.Page:
        """
        Return one page of ``GET /leads`` with its pagination facts; see :meth:`iter_leads` for filters.

        :param page: 1-based page number.
        :param skip_malformed: leave out leads that fail the checks (described in ``Page.malformed``)
            instead of refusing the page; a change feed must not stall on one bad lead.
        :param deadline: give up by this moment (``time.time()`` seconds), even mid-request.
        :param exact_time: send time bounds with their microseconds, whatever the server's clock
            showed so far: a change feed whose bound is a microsecond stamp the server wrote.
        """
        listing = api.leads_listing(self._lead_query(filters, exact_time), skip_malformed=skip_malformed)
        call = listing.call(api.page_number(page))
        answer = self._send(call, deadline)
        with self._scrubbed():
            read = self._note_precision(listing.read(call, page, answer, self.settings))
        self._report_lineage(self.settings, LEADS)
        return read

    def iter_leads(self, *, max_results: int | None = None, **filters: Unpack[LeadFilters]) -> Iterator[Lead]:
        """
        Yield every lead matching the filters, fetching page after page only as they are consumed.

        Filters (see :class:`~airflow_provider_octanist.types.LeadFilters`) are checked before any
        request: ``status``, ``source``, ``label_id``, ``website``, ``utm_source``/``utm_medium``/
        ``utm_campaign``, ``search``, ``fields``, ``sort`` (e.g. ``"updatedAt:asc"``), ``page_size``
        (1-100), time bounds ``created_``/``updated_``/``qualified_`` + ``gt``/``gte``/``lt``/``lte``
        (datetime, date or ISO string; naive means UTC), ``value_gt`` etc., and ``filters`` for raw
        API filters such as ``{"gclid[exists]": True}``.

        :param max_results: stop after this many leads.
        """
        listing = api.leads_listing(self._lead_query(filters))
        return cast("Iterator[Lead]", self._pages(listing, api.max_results_value(max_results), LEADS))

    def iter_leads_by_update(
        self, *, max_results: int | None = None, **filters: Unpack[LeadFilters]
    ) -> Iterator[Lead]:
        """
        Yield every lead matching the filters once, oldest ``updatedAt`` first, by keyset paging.

        Unlike page numbers, which a lead edited out of the filters shifts, each request asks for
        the leads updated at or after the newest one read (see ``_keyset.walk``): a lead
        that matches the filters for the whole walk is never left out, whatever is edited meanwhile.
        A lead edited during the walk and still matching comes once, as first read. Takes the
        filters of :meth:`iter_leads`; ``updated_gte`` and ``updated_lt`` bound the walk.

        :param max_results: stop after this many leads.
        :raises ValueError: for a ``sort`` other than ``updatedAt:asc``, or a raw ``updatedAt``
            filter in ``filters`` (the walk sets that bound itself).
        :raises OctanistResponseError: when Octanist ignores the sort (a page out of order).
        """
        from airflow_provider_octanist.hooks._by_update import leads_by_update

        return leads_by_update(self.list_leads_page, self._lead_query, max_results, dict(filters))

    def list_leads(self, *, max_results: int | None = None, **filters: Unpack[LeadFilters]) -> list[Lead]:
        """Return every lead matching the filters, across all pages (see :meth:`iter_leads`)."""
        return list(self.iter_leads(max_results=max_results, **filters))

    def create_lead(self, **fields: Unpack[NewLead]) -> dict[str, Any]:
        """
        Create a lead with ``POST /leads`` and return the response's ``data`` (contains ``id``).

        Takes the documented lead fields (``name``, ``email``, ``phone``, ``custom``, ``note``,
        ``website``, ``path``, click ids, ``utm_*``, consent flags, ``sessionId``); at least one of
        name, email, phone or custom. Never replayed once it may have reached Octanist, so a retry
        can never create a duplicate.
        """
        call = api.Call("POST", "/leads", body=api.create_lead_body(fields), replay_safe=False)
        data, request_id = self._call(call, expect=dict, legacy=api.legacy_created)
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise OctanistResponseError(
                f"Octanist answered {call.label} without the new lead's id",
                request_id=request_id,
                hint="The lead may have been created; check with list_leads(search=...) before repeating.",
            )
        self._report_lineage(self.settings, LEADS, output=True)
        return dict(data)

    def update_lead(self, **fields: Unpack[LeadUpdate]) -> dict[str, Any]:
        """
        Change a lead (or every lead matching an email/phone) with ``PATCH /leads``.

        The lead is found by ``lead_id``, else ``email``, else ``phone``. A status and a value are
        absolute, so repeating such a change is harmless and it is retried like a read. A note is
        attached, so a change carrying one is never replayed once it may have reached Octanist (a
        read timeout, a connection reset after sending, a 5xx): it fails with
        ``OctanistConnectionError``/``OctanistServerError`` saying that its outcome is unknown,
        and a replay could never attach the note twice.

        :param lead_id: the lead's id.
        :param email: the lead's email, when the id is not known.
        :param phone: the lead's phone number, when neither id nor email is known.
        :param status: ``qualified``, ``won`` or ``lost``.
        :param value: the lead's monetary value.
        :param note: a note to attach.
        :param loss_reason: why it was lost; only with ``status="lost"``.
        :return: ``{"leadId": ..., "leadsUpdated": n, "message": ...}``.
        """
        body = api.update_lead_body(fields)
        call = api.Call("PATCH", "/leads", body=body, replay_safe="note" not in body)
        data, _ = self._call(call, expect=dict, legacy=api.legacy_updated)
        self._report_lineage(self.settings, LEADS, output=True)
        return dict(data)

    def get_stats(
        self,
        period: str | None = None,
        *,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
    ) -> dict[str, Any]:
        """
        Return dashboard statistics (``POST /stats``): usage, leads by status and source, conversion.

        :param period: ``current`` (default), ``previous`` or ``custom``; dates imply ``custom``.
        :param start_date: first day of a custom period (``YYYY-MM-DD``, date or datetime).
        :param end_date: last day of a custom period.
        """
        data, _ = self._call(self._stats_call(period, start_date, end_date), expect=dict)
        self._report_lineage(self.settings, LEADS)
        return dict(data)

    def get_ad_spend(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        platform: str | None = None,
        group_by: str | None = None,
        page_size: int = api.MAX_AD_SPEND_PAGE_SIZE,
        max_results: int | None = None,
    ) -> list[dict[str, Any]]:
        """
        Return the ad-spend rows between two days (``POST /ad-spend``), across all pages.

        :param start_date: first day (``YYYY-MM-DD``, date or datetime).
        :param end_date: last day.
        :param platform: only this ad platform.
        :param group_by: grouping dimension, as Octanist names it.
        :param page_size: rows per request (1-500).
        :param max_results: stop after this many rows.
        """
        rows = self.iter_ad_spend(
            start_date,
            end_date,
            platform=platform,
            group_by=group_by,
            page_size=page_size,
            max_results=max_results,
        )
        return list(rows)

    def iter_ad_spend(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        platform: str | None = None,
        group_by: str | None = None,
        page_size: int = api.MAX_AD_SPEND_PAGE_SIZE,
        max_results: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the ad-spend rows page after page, as consumed; see :meth:`get_ad_spend`."""
        listing = self._ad_spend_listing(start_date, end_date, platform, group_by, page_size)
        return self._pages(listing, api.max_results_value(max_results), AD_SPEND)


class OctanistAsyncHook(_ClientShare, _OctanistHookBase):
    """
    The async twin of :class:`OctanistHook` for triggers, over one ``httpx.AsyncClient``.

    It has the same read methods with the same parsing and retry policy, and fetches its connection
    without blocking the event loop. Close it with ``await hook.aclose()`` or ``async with``.

    :param octanist_conn_id: Airflow connection id of type ``octanist``.
    :param timeout: read timeout in seconds (overrides the connection's extra).
    :param connect_timeout: connect timeout in seconds (overrides the connection's extra).
    :param max_retries: retries of a failed request (overrides the connection's extra).
    """

    @property
    def log(self) -> Any:
        """
        The logger of the class, shared by every async hook.

        A triggerer holds one hook per waiting trigger; a logger each would cost about a kilobyte
        apiece. Lines still reach their trigger's log: the triggerer routes them by the context
        they are logged in, not by the logger object.
        """
        return type(self).logger()

    async def get_settings(self) -> api.Settings:
        """Read the connection's settings without blocking the event loop (once)."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection

            from airflow_provider_octanist.hooks._async_extras import async_extra_dejson

            conn = await get_async_connection(self.octanist_conn_id, hook=self)
            return self._settings_from(conn, await async_extra_dejson(conn))
        return self._settings

    async def get_client(self) -> httpx.AsyncClient:
        """
        Return the ``httpx.AsyncClient`` for this connection in the running event loop.

        The client is shared with every other async hook of the same connection settings in the same
        event loop (a triggerer runs all its triggers in one), so a thousand triggers cost one client
        and its few warm connections, not a thousand. This hook holds a share until :meth:`aclose`.
        """
        return (await self._shared_client()).client

    async def aclose(self) -> None:
        """Give up this hook's share of the client; the last hook to let go closes it."""
        await self._release_client()

    async def __aenter__(self) -> OctanistAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: api.Call, deadline: float | None = None) -> api.Answer:
        """
        Send ``call``, retrying as :class:`_api.Attempts` allows; return the 2xx answer.

        :param deadline: give up at this moment (seconds since the epoch, ``time.time()``), even in
            the middle of an attempt; each attempt also ends after the settings' ``total_timeout``.
        """
        with self._scrubbed():
            return await self._send_unscrubbed(call, deadline)

    async def _send_unscrubbed(self, call: api.Call, deadline: float | None) -> api.Answer:
        import httpx

        from airflow_provider_octanist.hooks._failures import httpx_failure

        settings = await self.get_settings()
        shared = await self._shared_client()
        attempts = api.Attempts(call, settings, self.log, deadline=deadline)
        while True:
            started = monotonic()
            limit = attempts.limit()
            try:
                # The whole exchange, body included, within the limit; a cancelled request gives its
                # connection back to the shared client's pool at once (see hooks/_transport/).
                status, headers, content = await within(limit, shared.exchange(call, settings))
            except asyncio.TimeoutError:
                raise attempts.past_deadline(limit) from None
            except httpx.HTTPError as exc:
                await async_sleep(attempts.wait_after_failure(httpx_failure(exc)))
                continue
            self.log.debug("Octanist %s -> %d in %.0f ms", call.label, status, (monotonic() - started) * 1000)
            if 200 <= status < 300:
                return api.Answer(status, headers, content)
            await async_sleep(attempts.wait_after_status(status, headers, content))

    async def _call(
        self, call: api.Call, *, expect: type, legacy: Any = None, deadline: float | None = None
    ) -> tuple[Any, str | None]:
        answer = await self._send(call, deadline)
        with self._scrubbed():
            return self._read(call, answer, await self.get_settings(), expect=expect, legacy=legacy)

    async def _pages(
        self, listing: api.Listing, max_results: int | None, dataset: str
    ) -> AsyncIterator[dict[str, Any]]:
        settings = await self.get_settings()
        paging = api.Paging(listing, settings, max_results)
        reported = False
        while (call := paging.next_call()) is not None:
            answer = await self._send(call)
            with self._scrubbed():
                items = paging.read(call, answer)
            if not reported:  # once per listing, not once per page
                self._report_lineage(settings, dataset)
                reported = True
            for item in items:
                yield item

    async def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]
        """Check the API key with ``POST /check``."""
        try:
            settings = await self.get_settings()
            await self._call(api.Call("POST", "/check"), expect=dict, legacy=api.legacy_check)
        except (OctanistError, ValueError) as exc:
            return False, self._scrub_text(str(exc))
        return self._connection_ok(settings)

    async def get_lead(self, lead_id: str, *, deadline: float | None = None) -> Lead:
        """
        Return one lead; see :meth:`OctanistHook.get_lead`.

        :param deadline: give up by this moment (``time.time()`` seconds), even mid-request, with
            :class:`~airflow_provider_octanist.exceptions.OctanistTimeoutError`.
        """
        lead, _ = await self.get_lead_with_server_time(lead_id, deadline=deadline)
        return lead

    async def get_lead_with_server_time(
        self, lead_id: str, *, deadline: float | None = None
    ) -> tuple[Lead, str | None]:
        """
        Return one lead and the server's time of the answer (``meta.timestamp``, ``None`` if absent).

        The server's time tells a change feed where it must start to see every later change of
        this lead, independently of the local clock.

        :param lead_id: the lead's id, e.g. ``lead_abc123``.
        :param deadline: give up by this moment (``time.time()`` seconds), even mid-request.
        :raises OctanistNotFoundError: when no lead has that id.
        """
        call = self._lead_call(lead_id)
        status, headers, content = await self._send(call, deadline)
        with self._scrubbed():
            settings = await self.get_settings()
            data, payload = api.unwrap(call, status, headers, content, settings, expect=dict)
            lead = self._the_lead(lead_id, call, data, api.request_id_of(payload, headers))
        self._report_lineage(settings, LEADS)
        return lead, api.server_time_of(payload)

    async def list_leads_page(
        self,
        page: int = 1,
        *,
        skip_malformed: bool = False,
        deadline: float | None = None,
        exact_time: bool = False,
        **filters: Unpack[LeadFilters],
    ) -> api.Page:
        """
        Return one page of ``GET /leads``; see :meth:`OctanistHook.iter_leads` for filters.

        :param skip_malformed: leave out leads that fail the checks (described in ``Page.malformed``)
            instead of refusing the page; a change feed must not stall on one bad lead.
        :param deadline: give up by this moment (``time.time()`` seconds), even mid-request.
        :param exact_time: send time bounds with their microseconds, whatever the server's clock
            showed so far: a change feed whose bound is a microsecond stamp the server wrote.
        """
        listing = api.leads_listing(self._lead_query(filters, exact_time), skip_malformed=skip_malformed)
        call = listing.call(api.page_number(page))
        answer = await self._send(call, deadline)
        settings = await self.get_settings()
        with self._scrubbed():
            read = self._note_precision(listing.read(call, page, answer, settings))
        self._report_lineage(settings, LEADS)
        return read

    def iter_leads(
        self, *, max_results: int | None = None, **filters: Unpack[LeadFilters]
    ) -> AsyncIterator[Lead]:
        """Yield every matching lead, page by page (``async for``); see :meth:`OctanistHook.iter_leads`."""
        listing = api.leads_listing(self._lead_query(filters))
        return cast("AsyncIterator[Lead]", self._pages(listing, api.max_results_value(max_results), LEADS))

    async def list_leads(
        self, *, max_results: int | None = None, **filters: Unpack[LeadFilters]
    ) -> list[Lead]:
        """Return every matching lead across all pages."""
        return [lead async for lead in self.iter_leads(max_results=max_results, **filters)]

    async def get_stats(
        self,
        period: str | None = None,
        *,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
    ) -> dict[str, Any]:
        """Return dashboard statistics; see :meth:`OctanistHook.get_stats`."""
        data, _ = await self._call(self._stats_call(period, start_date, end_date), expect=dict)
        self._report_lineage(await self.get_settings(), LEADS)
        return dict(data)

    async def get_ad_spend(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        platform: str | None = None,
        group_by: str | None = None,
        page_size: int = api.MAX_AD_SPEND_PAGE_SIZE,
        max_results: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return the ad-spend rows between two days, all pages; see :meth:`OctanistHook.get_ad_spend`."""
        listing = self._ad_spend_listing(start_date, end_date, platform, group_by, page_size)
        return [row async for row in self._pages(listing, api.max_results_value(max_results), AD_SPEND)]
