"""
What both hooks share: the connection and its settings, the scrubbing of the API key out of their
errors, and the reading of answers into leads, pages and lineage.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_octanist import DEFAULT_CONN_ID, lineage
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._checks import check_conn_id, check_lead_id
from airflow_provider_octanist._timestamps import finer_than_milliseconds
from airflow_provider_octanist.exceptions import OctanistError

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

    from airflow_provider_octanist.types import DateLike, Lead


class _OctanistHookBase(BaseHook):  # type: ignore[misc]
    """Connection handling and the request/response vocabulary shared by both hooks."""

    conn_name_attr = "octanist_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "octanist"
    hook_name = "Octanist"

    def __init__(
        self,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        *,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        max_retries: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.octanist_conn_id = check_conn_id(octanist_conn_id)
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "max_retries": max_retries,
        }
        self._settings: api.Settings | None = None
        # Time filters go out in milliseconds, as documented, until this server's own clock
        # (meta.timestamp) shows microseconds: then its instants need them to be told apart.
        self._server_writes_microseconds = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(octanist_conn_id={self.octanist_conn_id!r})"

    def _settings_from(self, conn: Any, extras: Mapping[str, Any]) -> api.Settings:
        self._settings = api.settings_from_connection(conn, extras, **self._overrides)
        return self._settings

    @contextmanager
    def _scrubbed(self) -> Generator[None, None, None]:
        """Raise every Octanist error from within with the API key scrubbed out of its texts."""
        try:
            yield
        except OctanistError as exc:
            if self._settings is not None:
                api.scrub_error(exc, self._settings.api_key)
            raise

    @staticmethod
    def _read(
        call: api.Call,
        answer: api.Answer,
        settings: api.Settings,
        *,
        expect: type,
        legacy: Any = None,
    ) -> tuple[Any, str | None]:
        """Return ``(data, request_id)`` of a 2xx answer (see :func:`_api.unwrap`)."""
        status, headers, content = answer
        data, payload = api.unwrap(call, status, headers, content, settings, expect=expect, legacy=legacy)
        return data, api.request_id_of(payload, headers)

    def _lead_query(self, filters: Mapping[str, Any], exact_time: bool = False) -> dict[str, str]:
        """The query of ``GET /leads`` for ``filters``, time bounds as precise as the server's own."""
        return api.lead_list_params(exact_time=exact_time or self._server_writes_microseconds, **filters)

    def _note_precision(self, page: api.Page) -> api.Page:
        """Remember when the server's clock shows microseconds (see ``_lead_query``); return ``page``."""
        if finer_than_milliseconds(page.server_time):
            self._server_writes_microseconds = True
        return page

    @staticmethod
    def _lead_call(lead_id: str) -> api.Call:
        return api.Call("GET", api.lead_path(lead_id))

    @staticmethod
    def _the_lead(lead_id: str, call: api.Call, data: Any, request_id: str | None) -> Lead:
        lead = api.check_lead(data, call, request_id)
        api.check_same_lead(lead, check_lead_id(lead_id), call, request_id)
        return cast("Lead", lead)

    @staticmethod
    def _stats_call(period: str | None, start_date: DateLike | None, end_date: DateLike | None) -> api.Call:
        return api.Call("POST", "/stats", body=api.stats_body(period, start_date, end_date))

    @staticmethod
    def _ad_spend_listing(
        start_date: DateLike, end_date: DateLike, platform: str | None, group_by: str | None, page_size: int
    ) -> api.Listing:
        return api.ad_spend_listing(api.ad_spend_body(start_date, end_date, platform, group_by, page_size))

    def _report_lineage(self, settings: api.Settings, dataset: str, *, output: bool = False) -> None:
        """Report a read (or, with ``output``, a change) of an Octanist dataset to Airflow's hook lineage."""
        lineage.report_to_hook_lineage(self, settings.base_url, dataset, output=output)

    def _scrub_text(self, text: str) -> str:
        return text if self._settings is None else api.scrub(text, self._settings.api_key)

    @staticmethod
    def _connection_ok(settings: api.Settings) -> tuple[bool, str]:
        return (
            True,
            f"Connected to Octanist at {settings.base_url}; the API key of {settings.conn_id!r} is valid.",
        )
