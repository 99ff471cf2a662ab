"""
Export Octanist data to object storage (local files, S3, GCS, Azure, ``memory://``...), streaming,
and write lead outcomes from an object back into Octanist.

Both operators read page after page from the hook and write each page as it arrives, so memory
does not grow with the number of rows. The object appears at ``path`` only once complete (see
:func:`~airflow_provider_octanist.transfers._storage.write_whole`): a failure at any page leaves
nothing there, and a retry writes the whole object again. Formats: :mod:`._formats`.

The task returns a small summary (pushed to XCom): ``path``, ``format``, ``compression``, ``rows``,
``bytes`` and, for leads, ``by_status``. Neither the summary, the file nor the logs ever contain
the API key. With the OpenLineage provider installed, both report the Octanist dataset as input and
the object as output, with its rows and bytes on completion (see ``airflow_provider_octanist.lineage``).
"""

from __future__ import annotations

from collections import Counter
from contextlib import suppress
from functools import partial
from itertools import islice
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow_provider_octanist import DEFAULT_CONN_ID
from airflow_provider_octanist._checks import whole_number
from airflow_provider_octanist.lineage import AD_SPEND, LEADS
from airflow_provider_octanist.operators.octanist import _LeadListing, _OctanistOperator
from airflow_provider_octanist.transfers import _formats, _readers, _storage
from airflow_provider_octanist.transfers._write_back import (
    _ToOctanistLeadsOperator,
    with_write_back_parameters,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from airflow.providers.common.compat.sdk import Context

    Row = Mapping[str, Any]

__all__ = [
    "ObjectStorageToOctanistLeadsOperator",
    "OctanistAdSpendToObjectStorageOperator",
    "OctanistLeadsToObjectStorageOperator",
]


_NOT_COUNTED = ("sort", "fields", "page_size")
"""Lead list filters that do not change how many leads match."""


def _pages(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """Cut a stream of rows into lists of ``size`` (the hook fetches the next page as it is consumed)."""
    iterator = iter(rows)
    while page := list(islice(iterator, size)):
        yield page


def _count_statuses(by_status: Counter[Any], page: list[Row]) -> None:
    """Count the leads of one page by status."""
    by_status.update([lead.get("status") for lead in page])


class _ToObjectStorageOperator(_OctanistOperator):
    """What both exports share: where (``path``), how (format, compression) and the all-or-nothing write."""

    _dataset: ClassVar[str]
    """The Octanist dataset this export reads (``airflow_provider_octanist.lineage``)."""

    def __init__(
        self,
        *,
        path: Any,
        format: str = "jsonl",  # the word pandas, Spark and dbt use
        compression: str | None = None,
        storage_conn_id: str | None = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, **kwargs)
        _storage.check_path(path, storage_conn_id)
        _formats.check_format(format, compression)
        self.path = path
        self.format = format
        self.compression = compression
        self.storage_conn_id = storage_conn_id
        self._summary: dict[str, Any] | None = None

    def _parquet_columns(self) -> Sequence[tuple[str, str]] | None:
        """The fixed Parquet columns of this export; ``None`` to take them from the first page."""
        return None

    def _export(self, pages: Iterable[list[Row]], on_page: Callable[[list[Row]], None]) -> dict[str, Any]:
        """Write ``pages`` to ``path`` all or nothing; return the summary."""
        target = _storage.resolve(self.path, self.storage_conn_id)
        where = _storage.describe(target)
        self.log.info(
            "Exporting to %s (%s%s).", where, self.format, f", {self.compression}" if self.compression else ""
        )

        with self.hook:
            rows, size = _storage.write_whole(target, partial(self._write, pages, on_page))
        self.log.info("Exported %d row(s), %d bytes, to %s.", rows, size, where)
        self._summary = {
            "path": where,
            "format": self.format,
            "compression": self.compression,
            "rows": rows,
            "bytes": size,
        }
        return self._summary

    def _write(
        self, pages: Iterable[list[Row]], on_page: Callable[[list[Row]], None], stream: IO[bytes]
    ) -> int:
        """Write ``pages`` to ``stream`` in this export's format, ``on_page`` after each; return the rows."""
        writer: _formats.JsonLinesWriter | _formats.ParquetWriter
        if self.format == "parquet":
            writer = _formats.ParquetWriter(stream, self._parquet_columns())
        else:
            writer = _formats.JsonLinesWriter(stream, self.compression)
        rows = 0
        try:
            for page in pages:
                writer.write(page)
                on_page(page)
                rows += len(page)
        except BaseException:
            with suppress(Exception):  # the failure that stopped the export is the one to report
                writer.abort()
            raise
        writer.close()
        return rows

    # OpenLineage calls these in the task's process after ``execute``, on the same operator.
    def get_openlineage_facets_on_start(self) -> Any:
        """The Octanist dataset in, the object at ``path`` out (``None`` without OpenLineage)."""
        return self._lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """As on start, with the object's rows and bytes as output statistics."""
        return self._lineage(self._summary)

    def _lineage(self, summary: dict[str, Any] | None) -> Any:
        from airflow_provider_octanist.lineage import octanist_to_object_lineage

        base_url = self.hook.settings.base_url
        if summary is None:
            return octanist_to_object_lineage(base_url, self._dataset, _storage.url_of(self.path))
        return octanist_to_object_lineage(
            base_url, self._dataset, summary["path"], rows=summary["rows"], size=summary["bytes"]
        )


class OctanistLeadsToObjectStorageOperator(_LeadListing, _ToObjectStorageOperator):
    """
    Stream every lead matching the filters to one object at ``path``; return a summary.

    The filters are those of
    :class:`~airflow_provider_octanist.operators.octanist.OctanistListLeadsOperator`. Leads are read
    in ``updatedAt:asc`` order by keyset paging (see ``OctanistHook.iter_leads_by_update``): each
    request asks for the leads updated since the newest one written, so leads edited while the
    export runs shift nothing, and every lead that matches the filters for the whole export is in
    the object, once. With another ``sort`` (or a raw ``updatedAt`` filter in ``extra_filters``)
    pages are read by number, and the export counts the matching leads before and after: when the
    counts differ, or the rows written are not that count, the listing moved under the export and
    it fails (nothing is written) rather than leave leads out.

    .. code-block:: python

        OctanistLeadsToObjectStorageOperator(
            task_id="export_leads",
            path="s3://lake/octanist/leads/{{ ds }}.jsonl.gz",
            storage_conn_id="aws_default",
            compression="gzip",
            updated_gte="{{ data_interval_start }}",
            updated_lt="{{ data_interval_end }}",
        )

    :param path: where the object goes: a URL (``file:///...``, ``s3://...``, ``gs://...``,
        ``memory://...``) or an ``ObjectStoragePath`` (templated). An existing object is replaced.
    :param status: only leads with this status (templated).
    :param updated_gte: only leads updated at or after this moment (templated).
    :param updated_lt: only leads updated before this moment (templated).
    :param created_gte: only leads created at or after this moment (templated).
    :param created_lt: only leads created before this moment (templated).
    :param search: free text matched against name, email and phone (templated).
    :param sort: order as ``field:direction``; default ``updatedAt:asc`` (templated).
    :param fields: only these lead fields (``id`` is always included) (templated).
    :param page_size: leads per request, 1-100.
    :param max_results: stop after this many leads; ``None`` exports every matching lead.
    :param extra_filters: further keyword filters of ``OctanistHook.iter_leads``, e.g.
        ``{"source": "api", "value_gte": 100}`` (templated).
    :param format: ``jsonl`` (JSON Lines) or ``parquet`` (needs the ``parquet`` extra).
    :param compression: ``None`` or ``gzip`` (JSON Lines only).
    :param storage_conn_id: the Airflow connection of the store (e.g. ``aws_default``), for a URL path.
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = (
        "path",
        *_LeadListing.NAMED_FILTERS,
        "extra_filters",
        "octanist_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"extra_filters": "json"}
    _dataset = LEADS

    def _parquet_columns(self) -> Sequence[tuple[str, str]]:
        return _formats.LEAD_COLUMNS

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_octanist._keyset.walk import walkable

        filters = self._filters()
        # Built before the first request: a bad filter fails here, before anything is written.
        pages: Iterable[list[Row]]
        if walkable(filters):
            leads = self.hook.iter_leads_by_update(max_results=self.max_results, **filters)
            pages = _pages(leads, self.page_size)
        else:
            leads = self.hook.iter_leads(max_results=self.max_results, **filters)
            pages = self._counted(_pages(leads, self.page_size), filters)
        by_status: Counter[Any] = Counter()
        summary = self._export(pages, partial(_count_statuses, by_status))
        summary["by_status"] = dict(sorted((str(status), n) for status, n in by_status.items()))
        return summary

    def _counted(self, pages: Iterable[list[Row]], filters: Mapping[str, Any]) -> Iterator[list[Row]]:
        """
        ``pages`` read by page number, checked against the count of matching leads before and after.

        A lead edited out of the filters while the pages are read shifts the leads after it, and one
        of them is on no page: the count then differs between the start and the end, or from the
        rows read. Raised at the end of the pages, so the object is never written.
        """
        before = self._count(filters)
        rows = 0
        for page in pages:
            rows += len(page)
            yield page
        after = self._count(filters)
        if before is None or after is None:
            self.log.warning(
                "Octanist's answers carry no pagination total, so the export cannot check that no lead "
                "was shifted off a page while it read them (%d row(s) exported).",
                rows,
            )
            return
        expected = before if self.max_results is None else min(before, self.max_results)
        if before != after or rows != expected:
            from airflow_provider_octanist.exceptions import OctanistError

            raise OctanistError(
                f"The leads export read {rows} lead(s) while {before} matched the filters when it started "
                f"and {after} when it ended: leads were edited while it read the pages by number, which "
                "can shift a lead off every page. Nothing was written",
                hint="Run it again (a retry reads the listing afresh), or leave sort unset so the export "
                "pages by updatedAt, which no edit can shift.",
            )

    def _count(self, filters: Mapping[str, Any]) -> int | None:
        """How many leads match ``filters`` now (one request for one lead), if Octanist says."""
        query = {name: value for name, value in filters.items() if name not in _NOT_COUNTED}
        return self.hook.list_leads_page(1, page_size=1, fields="id", **query).total


class OctanistAdSpendToObjectStorageOperator(_ToObjectStorageOperator):
    """
    Stream the ad-spend report between two days, every page, to one object at ``path``.

    The days are ``start_day`` and ``end_day`` (not ``start_date``/``end_date``, which every Airflow
    operator already has for its own schedule, and which ``default_args`` would fill in).

    .. code-block:: python

        OctanistAdSpendToObjectStorageOperator(
            task_id="export_ad_spend",
            path="gs://lake/octanist/ad-spend/{{ ds }}.jsonl",
            storage_conn_id="google_cloud_default",
            start_day="{{ ds }}",
            end_day="{{ ds }}",
        )

    :param path: where the object goes: a URL or an ``ObjectStoragePath`` (templated).
    :param start_day: first day of the report, ``YYYY-MM-DD`` or a date (templated).
    :param end_day: last day of the report, inclusive (templated).
    :param platform: only this ad platform (templated).
    :param group_by: grouping dimension, as Octanist names it (templated).
    :param page_size: rows per request, 1-500.
    :param max_results: stop after this many rows; ``None`` exports every row.
    :param format: ``jsonl`` (JSON Lines) or ``parquet`` (needs the ``parquet`` extra).
    :param compression: ``None`` or ``gzip`` (JSON Lines only).
    :param storage_conn_id: the Airflow connection of the store, for a URL path.
    :param octanist_conn_id: Airflow connection of type ``octanist`` (templated).
    """

    template_fields: Sequence[str] = (
        "path",
        "start_day",
        "end_day",
        "platform",
        "group_by",
        "octanist_conn_id",
    )
    _dataset = AD_SPEND

    def __init__(
        self,
        *,
        path: Any,
        start_day: Any,
        end_day: Any,
        platform: str | None = None,
        group_by: str | None = None,
        page_size: int = 500,
        max_results: int | None = None,
        format: str = "jsonl",
        compression: str | None = None,
        storage_conn_id: str | None = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            path=path,
            format=format,
            compression=compression,
            storage_conn_id=storage_conn_id,
            octanist_conn_id=octanist_conn_id,
            **kwargs,
        )
        whole_number(page_size, "page_size", low=1, high=500)
        if max_results is not None:
            whole_number(max_results, "max_results", low=1)
        self.start_day = start_day
        self.end_day = end_day
        self.platform = platform
        self.group_by = group_by
        self.page_size = page_size
        self.max_results = max_results

    def execute(self, context: Context) -> dict[str, Any]:
        rows = self.hook.iter_ad_spend(
            self.start_day,
            self.end_day,
            platform=self.platform or None,
            group_by=self.group_by or None,
            page_size=self.page_size,
            max_results=self.max_results,
        )
        return self._export(_pages(rows, self.page_size), lambda page: None)


@with_write_back_parameters
class ObjectStorageToOctanistLeadsOperator(_ToOctanistLeadsOperator):
    """
    Update one Octanist lead per row of one object at ``path``; return a summary of every row's outcome.

    A row names its lead by ``id``, ``email`` or ``phone`` (the first present, as the API does)
    and carries any of ``status`` (``qualified``, ``won``, ``lost``), ``value``, ``note`` and
    ``lossReason`` (only with ``lost``). Empty cells are not given; any other column makes the row
    invalid. Invalid rows are reported, never sent. Up to ``max_concurrency`` updates are in flight
    at once over one pool of connections, fewer for a while after Octanist answers 429.

    Every row is accounted for: the task reads every row, writes the whole report (if asked), then
    fails if more than ``max_failed_rows`` rows were invalid, not found, ambiguous (an email or
    phone that several leads share) or failed, naming the first few with their reasons.

    For example:

        ObjectStorageToOctanistLeadsOperator(
            task_id="mark_closed_deals_won",
            path="s3://warehouse/closed-deals/{{ ds }}.csv",
            format="csv",
            storage_conn_id="aws_default",
            report_path="s3://warehouse/octanist-reports/{{ ds }}.jsonl",
        )

    :param path: the object to read: a URL (``file:///...``, ``s3://...``, ``gs://...``,
        ``memory://...``) or an ``ObjectStoragePath`` (templated).
    :param format: ``jsonl`` (JSON Lines, gzip-compressed or not: recognised by its content),
        ``csv`` (UTF-8, a header row naming the columns) or ``parquet`` (needs the ``parquet`` extra).
    :param kwargs: what every write-back takes, described after this list (``octanist_conn_id``,
        ``storage_conn_id``, ``max_concurrency``, ``max_failed_rows``, ``max_failed_ratio``,
        ``report_path``, ``state_path``, ``carry_over_for``, ``resolve_unknown``, ``dry_run``),
        and what any operator takes.
    """

    template_fields: Sequence[str] = ("path", "report_path", "state_path", "octanist_conn_id")

    def __init__(
        self,
        *,
        path: Any,
        format: str = "jsonl",  # the word pandas, Spark and dbt use
        storage_conn_id: str | None = None,
        octanist_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(octanist_conn_id=octanist_conn_id, storage_conn_id=storage_conn_id, **kwargs)
        _storage.check_path(path, storage_conn_id)
        _readers.check_read_format(format)
        self.path = path
        self.format = format
        self.source: str | None = None
        """The object read, as a URL, once the task has run."""

    def execute(self, context: Context) -> dict[str, Any]:
        target = _storage.resolve(self.path, self.storage_conn_id)
        self.source = _storage.describe(target)
        try:
            stream = target.open("rb")
        except FileNotFoundError:
            raise FileNotFoundError(
                f"There is no object at {self.source} to read the rows from: check path "
                f"({self.path!r} as given)."
            ) from None
        with stream:
            return self._write_back(_readers.read_rows(stream, self.format), self.source)

    def _lineage(self, updated: int | None) -> Any:
        from airflow_provider_octanist.lineage import object_to_octanist_lineage

        return object_to_octanist_lineage(
            _storage.url_of(self.path), self.hook.settings.base_url, rows=updated, dry_run=self.dry_run
        )
