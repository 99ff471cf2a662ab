"""Hooks for the Octanist REST API: :class:`OctanistHook` (requests) and its async twin (httpx)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_octanist import CONNECTION_FORM_BEHAVIOUR, CONNECTION_FORM_EXTRAS
from airflow_provider_octanist import _api as api
from airflow_provider_octanist.exceptions import OctanistError

if TYPE_CHECKING:
    import httpx
    import requests

__all__ = ["OctanistAsyncHook", "OctanistHook"]

Lead = dict[str, Any]
DateLike = datetime | date | str


def _requests_failure(exc: Exception) -> tuple[str, bool, bool]:
    """Describe a requests exception: (reason, is_timeout, may_have_reached_server)."""
    import requests
    import urllib3.exceptions

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connecting timed out", True, False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "no response within the read timeout", True, True
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed", False, False
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, urllib3.exceptions.NewConnectionError):
            return "the connection could not be opened (refused or unreachable)", False, False
        return "the connection was closed before a complete response arrived", False, True
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the response was cut off", False, True
    return f"the request failed ({type(exc).__name__})", False, True


def _httpx_failure(exc: Exception) -> tuple[str, bool, bool]:
    """Describe an httpx exception: (reason, is_timeout, may_have_reached_server)."""
    import httpx

    if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "connecting timed out", True, False
    if isinstance(exc, httpx.TimeoutException):
        return "no response within the read timeout", True, True
    if isinstance(exc, httpx.ConnectError):
        return "the connection could not be opened (refused or unreachable)", False, False
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return "the connection was closed before a complete response arrived", False, True
    return f"the request failed ({type(exc).__name__})", False, True


class _OctanistHookBase(BaseHook):  # type: ignore[misc]
    """Connection handling and the request/response vocabulary shared by both hooks."""

    conn_name_attr = "octanist_conn_id"
    default_conn_name = api.DEFAULT_CONN_ID
    conn_type = "octanist"
    hook_name = "Octanist"

    def __init__(
        self,
        octanist_conn_id: str = api.DEFAULT_CONN_ID,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not isinstance(octanist_conn_id, str) or not octanist_conn_id.strip():
            raise ValueError(f"octanist_conn_id must be a connection id, got {octanist_conn_id!r}.")
        self.octanist_conn_id = octanist_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_retries": max_retries,
        }
        self._settings: api.Settings | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(octanist_conn_id={self.octanist_conn_id!r})"

    # The connection form for Airflow 2.11-3.1; Airflow 3.2+ reads the declarative form from
    # get_provider_info() instead. Both come from the same definitions.
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return the custom behaviour of the standard connection-form fields."""
        return {key: (list(v) if isinstance(v, list) else dict(v)) for key, v in CONNECTION_FORM_BEHAVIOUR.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the extra connection-form widgets (timeouts, retries, plain-http opt-in)."""
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField

        try:
            from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

            text: dict[str, Any] = {"widget": BS3TextFieldWidget()}
        except ImportError:
            text = {}
        widgets: dict[str, Any] = {}
        for name, spec in CONNECTION_FORM_EXTRAS.items():
            label = lazy_gettext(spec["label"])
            if spec["type"] == "boolean":
                widgets[name] = BooleanField(label, default=spec["default"], description=spec["description"])
            elif spec["type"] == "integer":
                widgets[name] = IntegerField(label, default=spec["default"], description=spec["description"], **text)
            else:
                widgets[name] = StringField(label, default=str(spec["default"]), description=spec["description"], **text)
        return widgets

    def _settings_from(self, conn: Any, extras: Mapping[str, Any]) -> api.Settings:
        self._settings = api.settings_from_connection(conn, extras, **self._overrides)
        return self._settings

    @staticmethod
    def _lead_call(lead_id: str) -> api.Call:
        return api.Call("GET", api.lead_path(lead_id))

    @staticmethod
    def _list_call(params: Mapping[str, str], page: int) -> api.Call:
        return api.Call("GET", "/leads", {**params, "page": str(page)})

    @staticmethod
    def _stats_call(period: str | None, start_date: Any, end_date: Any) -> api.Call:
        return api.Call("POST", "/stats", body=api.stats_body(period, start_date, end_date))

    def _connection_ok(self, settings: api.Settings) -> tuple[bool, str]:
        return True, f"Connected to Octanist at {settings.base_url}; the API key of {settings.conn_id!r} is valid."


class OctanistHook(_OctanistHookBase):
    """
    Talk to the Octanist REST API over one pooled ``requests.Session``.

    The API key is the connection's password and travels only in the ``X-API-KEY`` header. Every
    request has a connect and a read timeout; 429, 5xx, connection errors and timeouts are retried
    with exponential backoff and jitter, honouring ``Retry-After``; 4xx answers are never retried,
    and creating a lead is never replayed once it may have reached Octanist.

    :param octanist_conn_id: Airflow connection id of type ``octanist``.
    :param timeout: read timeout in seconds; overrides the connection's ``timeout`` extra (default 30).
    :param connect_timeout: connect timeout in seconds; overrides the ``connect_timeout`` extra (default 10).
    :param max_retries: retries of a failed request; overrides the ``max_retries`` extra (default 3).
    """

    def __init__(
        self,
        octanist_conn_id: str = api.DEFAULT_CONN_ID,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            octanist_conn_id, timeout=timeout, connect_timeout=connect_timeout, max_retries=max_retries, **kwargs
        )
        self._session: requests.Session | None = None

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
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            session.trust_env = True
            # Retries are ours (see _api.Attempts): they know which calls are safe to replay.
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=10, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
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

    def _send(self, call: api.Call) -> tuple[int, Mapping[str, str], bytes]:
        import requests

        settings = self.settings
        session = self.get_conn()
        attempts = api.Attempts(call, settings, self.log)
        while True:
            started = time.monotonic()
            try:
                response = session.request(
                    call.method,
                    settings.url(call.path),
                    params=call.params,
                    json=call.body,
                    headers=settings.headers(with_body=call.body is not None),
                    timeout=(settings.connect_timeout, settings.read_timeout),
                    allow_redirects=False,
                    verify=settings.verify,
                )
                content = response.content
            except requests.exceptions.RequestException as exc:
                reason, timed_out, reached = _requests_failure(exc)
                wait = attempts.after_failure(reason, may_have_reached_server=reached)
                if wait is None:
                    raise attempts.failure(reason, timeout=timed_out, may_have_reached_server=reached) from None
                time.sleep(wait)
                continue
            status = response.status_code
            self.log.debug(
                "Octanist %s -> %d in %.0f ms", call.label, status, (time.monotonic() - started) * 1000
            )
            if 200 <= status < 300:
                return status, response.headers, content
            wait = attempts.after_status(status, response.headers)
            if wait is None:
                raise api.error_for(call, status, response.headers, content, settings)
            time.sleep(wait)

    def _call(self, call: api.Call, *, expect: type, legacy: Any = None) -> tuple[Any, Any, Mapping[str, str]]:
        status, headers, content = self._send(call)
        data, payload = api.unwrap(call, status, headers, content, self.settings, expect=expect, legacy=legacy)
        return data, payload, headers

    # -- the API --------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the API key with ``POST /check``; used by the UI's Test button and ``airflow connections test``."""
        try:
            settings = self.settings
            self._call(api.Call("POST", "/check"), expect=dict, legacy=api.legacy_check)
        except (OctanistError, ValueError) as exc:
            return False, str(exc)
        return self._connection_ok(settings)

    def get_lead(self, lead_id: str) -> Lead:
        """
        Return one lead (the ``data`` object of ``GET /leads/{id}``).

        :param lead_id: the lead's id, e.g. ``lead_abc123``.
        :raises OctanistNotFoundError: when no lead has that id.
        """
        call = self._lead_call(lead_id)
        data, payload, headers = self._call(call, expect=dict)
        return api.check_lead(data, call, api._request_id(payload, headers))

    def list_leads_page(self, page: int = 1, **filters: Any) -> api.Page:
        """
        Return one page of ``GET /leads`` with its pagination facts; see :meth:`iter_leads` for filters.

        :param page: 1-based page number.
        """
        params = api.lead_list_params(**filters)
        return self._fetch_page(params, page)

    def _fetch_page(self, params: Mapping[str, str], page: int) -> api.Page:
        call = self._list_call(params, page)
        data, payload, headers = self._call(call, expect=list, legacy=api.legacy_list)
        result = api.page_from(call, data, payload, page, headers)
        leads = [api.check_lead(lead, call, result.request_id) for lead in result.items]
        return api.Page(leads, result.page, result.has_more, result.total_pages, result.total, result.request_id)

    def iter_leads(self, *, max_results: int | None = None, **filters: Any) -> Iterator[Lead]:
        """
        Yield every lead matching the filters, fetching page after page only as they are consumed.

        Filters are checked before any request: ``status``, ``source``, ``label_id``, ``website``,
        ``utm_source``/``utm_medium``/``utm_campaign``, ``search``, ``fields``, ``sort`` (e.g.
        ``"updatedAt:asc"``), ``page_size`` (1-100), time bounds ``created_``/``updated_``/``qualified_``
        + ``gt``/``gte``/``lt``/``lte`` (datetime, date or ISO string; naive means UTC), ``value_gt`` etc.,
        and ``filters`` for raw API filters such as ``{"gclid[exists]": True}``.

        :param max_results: stop after this many leads.
        """
        params = api.lead_list_params(**filters)
        limit = api.max_results_value(max_results)
        return self._iter_leads(params, limit)

    def _iter_leads(self, params: Mapping[str, str], limit: int | None) -> Iterator[Lead]:
        seen: set[Any] = set()
        page_number, count = 1, 0
        while True:
            page = self._fetch_page(params, page_number)
            for lead in page.items:
                yield lead
                count += 1
                if limit is not None and count >= limit:
                    return
            if not api.should_continue(page, seen, self._list_call(params, page_number)):
                return
            page_number += 1

    def list_leads(self, *, max_results: int | None = None, **filters: Any) -> list[Lead]:
        """Return every lead matching the filters, across all pages (see :meth:`iter_leads`)."""
        return list(self.iter_leads(max_results=max_results, **filters))

    def create_lead(self, **fields: Any) -> dict[str, Any]:
        """
        Create a lead with ``POST /leads`` and return the response's ``data`` (contains ``id``).

        Takes the documented lead fields (``name``, ``email``, ``phone``, ``custom``, ``note``,
        ``website``, ``path``, click ids, ``utm_*``, consent flags, ``sessionId``); at least one of
        name, email, phone or custom. Never replayed once it may have reached Octanist, so a retry
        can never create a duplicate.
        """
        call = api.Call("POST", "/leads", body=api.create_lead_body(fields), replay_safe=False)
        data, _, _ = self._call(call, expect=dict, legacy=api.legacy_created)
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise api.OctanistResponseError(f"Octanist answered {call.label} without the new lead's id")
        return dict(data)

    def update_lead(
        self,
        *,
        lead_id: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        status: str | None = None,
        value: float | str | None = None,
        note: str | None = None,
        loss_reason: str | None = None,
    ) -> dict[str, Any]:
        """
        Change a lead (or every lead matching an email/phone) with ``PATCH /leads``.

        The lead is found by ``lead_id``, else ``email``, else ``phone``. Setting the status a lead
        already has is harmless, so this call is safe to retry.

        :param status: ``qualified``, ``won`` or ``lost``.
        :param value: the lead's monetary value.
        :param note: a note to attach.
        :param loss_reason: why it was lost; only with ``status="lost"``.
        :return: ``{"leadId": ..., "leadsUpdated": n, "message": ...}``.
        """
        body = api.update_lead_body(
            lead_id=lead_id, email=email, phone=phone, status=status, value=value, note=note, loss_reason=loss_reason
        )
        data, _, _ = self._call(api.Call("PATCH", "/leads", body=body), expect=dict, legacy=api.legacy_updated)
        return dict(data)

    def get_stats(
        self, period: str | None = None, *, start_date: DateLike | None = None, end_date: DateLike | None = None
    ) -> dict[str, Any]:
        """
        Return dashboard statistics (``POST /stats``): usage, leads by status and source, conversion.

        :param period: ``current`` (default), ``previous`` or ``custom``; dates imply ``custom``.
        :param start_date: first day of a custom period (``YYYY-MM-DD``, date or datetime).
        :param end_date: last day of a custom period.
        """
        data, _, _ = self._call(self._stats_call(period, start_date, end_date), expect=dict)
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

        :param platform: only this ad platform.
        :param group_by: grouping dimension, as Octanist names it.
        :param page_size: rows per request (1-500).
        :param max_results: stop after this many rows.
        """
        body = api.ad_spend_body(start_date, end_date, platform, group_by, page_size)
        limit = api.max_results_value(max_results)
        rows: list[dict[str, Any]] = []
        seen: set[Any] = set()
        page_number = 1
        while True:
            call = api.Call("POST", "/ad-spend", body={**body, "page": page_number})
            data, payload, headers = self._call(call, expect=list)
            page = api.page_from(call, data, payload, page_number, headers)
            rows.extend(page.items)
            if (limit is not None and len(rows) >= limit) or not api.should_continue(page, seen, call):
                return rows[:limit] if limit is not None else rows
            page_number += 1


class OctanistAsyncHook(_OctanistHookBase):
    """
    The async twin of :class:`OctanistHook` for triggers, over one ``httpx.AsyncClient``.

    It has the same read methods with the same parsing and retry policy, and fetches its connection
    without blocking the event loop. Close it with ``await hook.aclose()`` or ``async with``.

    :param octanist_conn_id: Airflow connection id of type ``octanist``.
    :param timeout: read timeout in seconds (overrides the connection's extra).
    :param connect_timeout: connect timeout in seconds (overrides the connection's extra).
    :param max_retries: retries of a failed request (overrides the connection's extra).
    """

    def __init__(
        self,
        octanist_conn_id: str = api.DEFAULT_CONN_ID,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            octanist_conn_id, timeout=timeout, connect_timeout=connect_timeout, max_retries=max_retries, **kwargs
        )
        self._client: httpx.AsyncClient | None = None

    async def get_settings(self) -> api.Settings:
        """Read the connection's settings without blocking the event loop (once)."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

            conn = await get_async_connection(self.octanist_conn_id, hook=self)
            return self._settings_from(conn, await get_async_extra_dejson(conn))
        return self._settings

    async def get_client(self) -> httpx.AsyncClient:
        """Return the hook's ``httpx.AsyncClient`` (created on first use)."""
        if self._client is None:
            import httpx

            settings = await self.get_settings()
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
                verify=settings.verify,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=10, max_keepalive_connections=10),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the client and its connections."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> OctanistAsyncHook:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: api.Call) -> tuple[int, Mapping[str, str], bytes]:
        import httpx

        settings = await self.get_settings()
        client = await self.get_client()
        attempts = api.Attempts(call, settings, self.log)
        while True:
            try:
                response = await client.request(
                    call.method,
                    settings.url(call.path),
                    params=call.params,
                    json=call.body,
                    headers=settings.headers(with_body=call.body is not None),
                )
            except httpx.HTTPError as exc:
                reason, timed_out, reached = _httpx_failure(exc)
                wait = attempts.after_failure(reason, may_have_reached_server=reached)
                if wait is None:
                    raise attempts.failure(reason, timeout=timed_out, may_have_reached_server=reached) from None
                await asyncio.sleep(wait)
                continue
            status = response.status_code
            if 200 <= status < 300:
                return status, response.headers, response.content
            wait = attempts.after_status(status, response.headers)
            if wait is None:
                raise api.error_for(call, status, response.headers, response.content, settings)
            await asyncio.sleep(wait)

    async def _call(
        self, call: api.Call, *, expect: type, legacy: Any = None
    ) -> tuple[Any, Any, Mapping[str, str]]:
        status, headers, content = await self._send(call)
        settings = await self.get_settings()
        data, payload = api.unwrap(call, status, headers, content, settings, expect=expect, legacy=legacy)
        return data, payload, headers

    async def test_connection(self) -> tuple[bool, str]:  # type: ignore[override]
        """Check the API key with ``POST /check``."""
        try:
            settings = await self.get_settings()
            await self._call(api.Call("POST", "/check"), expect=dict, legacy=api.legacy_check)
        except (OctanistError, ValueError) as exc:
            return False, str(exc)
        return self._connection_ok(settings)

    async def get_lead(self, lead_id: str) -> Lead:
        """Return one lead; see :meth:`OctanistHook.get_lead`."""
        call = self._lead_call(lead_id)
        data, payload, headers = await self._call(call, expect=dict)
        return api.check_lead(data, call, api._request_id(payload, headers))

    async def list_leads_page(self, page: int = 1, **filters: Any) -> api.Page:
        """Return one page of ``GET /leads``; see :meth:`OctanistHook.iter_leads` for filters."""
        return await self._fetch_page(api.lead_list_params(**filters), page)

    async def _fetch_page(self, params: Mapping[str, str], page: int) -> api.Page:
        call = self._list_call(params, page)
        data, payload, headers = await self._call(call, expect=list, legacy=api.legacy_list)
        result = api.page_from(call, data, payload, page, headers)
        leads = [api.check_lead(lead, call, result.request_id) for lead in result.items]
        return api.Page(leads, result.page, result.has_more, result.total_pages, result.total, result.request_id)

    def iter_leads(self, *, max_results: int | None = None, **filters: Any) -> AsyncIterator[Lead]:
        """Yield every matching lead, page by page (``async for``); see :meth:`OctanistHook.iter_leads`."""
        params = api.lead_list_params(**filters)
        limit = api.max_results_value(max_results)
        return self._iter_leads(params, limit)

    async def _iter_leads(self, params: Mapping[str, str], limit: int | None) -> AsyncIterator[Lead]:
        seen: set[Any] = set()
        page_number, count = 1, 0
        while True:
            page = await self._fetch_page(params, page_number)
            for lead in page.items:
                yield lead
                count += 1
                if limit is not None and count >= limit:
                    return
            if not api.should_continue(page, seen, self._list_call(params, page_number)):
                return
            page_number += 1

    async def list_leads(self, *, max_results: int | None = None, **filters: Any) -> list[Lead]:
        """Return every matching lead across all pages."""
        return [lead async for lead in self.iter_leads(max_results=max_results, **filters)]

    async def get_stats(
        self, period: str | None = None, *, start_date: DateLike | None = None, end_date: DateLike | None = None
    ) -> dict[str, Any]:
        """Return dashboard statistics; see :meth:`OctanistHook.get_stats`."""
        data, _, _ = await self._call(self._stats_call(period, start_date, end_date), expect=dict)
        return dict(data)
