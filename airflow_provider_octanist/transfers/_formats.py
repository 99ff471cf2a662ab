"""
How exported rows are written: JSON Lines (optionally gzip) or Parquet, one page at a time.

JSON Lines: one JSON object per line, UTF-8, strict JSON (no ``NaN``), keys in the API's order.

Parquet (pyarrow): a schema fixed before the first row, so every page and every day's file agree
whatever fields a given lead has. Leads get one column per documented lead field (strings, ``value``
as float64, consent flags as booleans, timestamps as ``timestamp[us, UTC]``); other rows (ad spend,
whose shape Octanist does not document) get the columns of the first page, typed by their first
value. Nested values in a string column are JSON-encoded; fields outside the schema, and values
that do not fit their column's type exactly (an integer a float64 would round, a number outside
int64, a time finer than microseconds), go to the ``extra_fields`` column as a JSON object (null
when there are none), so nothing is lost and nothing is rounded.
"""

from __future__ import annotations

import gzip
import json
import re
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_octanist._timestamps import parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

FORMATS = ("jsonl", "parquet")
COMPRESSIONS = (None, "gzip")
PARQUET_EXTRA = "pip install 'airflow-provider-octanist[parquet]'"
EXTRA_COLUMN = "extra_fields"
ROW_GROUP_ROWS = 10_000
"""Rows per Parquet row group: pages are buffered (as Arrow arrays) up to this many, then written."""

_CLICK_IDS = (
    "gclid", "dclid", "wbraid", "gbraid", "ga4cid", "ga4sid", "fbc", "fbp", "msclkid", "ttclid",
    "twclid", "rdt_cid", "sccid", "epik", "li_fat_id",
)  # fmt: skip
LEAD_COLUMNS: tuple[tuple[str, str], ...] = (
    *((name, "string") for name in (
        "id", "name", "email", "phone", "note", "custom", "source", "website", "path", "labelId",
        "conversionName", "selectedConversionEventId", "status",
    )),
    ("value", "float"),
    ("currency", "string"),
    ("lossReason", "string"),
    *((name, "string") for name in _CLICK_IDS),
    *((name, "string") for name in ("utm_source", "utm_medium", "utm_campaign")),
    *((name, "bool") for name in ("ad_storage", "ad_user_data", "analytics_storage", "ad_personalization")),
    *((name, "string") for name in (
        "googleAdsCampaignId", "googleAdsCampaignName", "googleAdsAdGroupId", "googleAdsAdGroupName",
        "googleAdsAdId",
    )),
    *((name, "timestamp") for name in ("createdAt", "updatedAt", "qualifiedAt", "expiresAt")),
)  # fmt: skip
"""The Parquet columns of a lead export: every documented lead field and its type."""


def check_format(file_format: Any, compression: Any) -> None:
    """Reject an unknown format or compression, or a combination that cannot be written, at parse time."""
    if file_format not in FORMATS:
        raise ValueError(f"format must be 'jsonl' or 'parquet', got {file_format!r}.")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be None or 'gzip', got {compression!r}.")
    if file_format == "parquet":
        if compression is not None:
            raise ValueError(
                "compression applies to JSON Lines only: Parquet compresses its own pages (snappy). "
                "Leave compression=None with format='parquet'."
            )
        from importlib.util import find_spec

        if find_spec("pyarrow") is None:
            raise ValueError(f"format='parquet' needs pyarrow, which is not installed: {PARQUET_EXTRA}")


class JsonLinesWriter:
    """Writes rows as JSON Lines to a binary stream, gzip-compressed if asked."""

    def __init__(self, stream: IO[bytes], compression: str | None) -> None:
        self._gzip = gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) if compression == "gzip" else None
        self._out = self._gzip.write if self._gzip is not None else stream.write
        self._encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode
        self._ascii = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append one page of rows."""
        if not rows:
            return
        try:
            data = ("\n".join(map(self._encode, rows)) + "\n").encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (an unpaired \ud800 escape in the API's JSON) has no UTF-8 form: this
            # page is written with escapes instead, still valid JSON and UTF-8.
            data = ("\n".join(map(self._ascii, rows)) + "\n").encode("ascii")
        self._out(data)

    def close(self) -> None:
        """Finish the stream (the gzip trailer); the caller closes the underlying stream."""
        if self._gzip is not None:
            self._gzip.close()

    def abort(self) -> None:
        """Stop writing after a failure (what was written is discarded by the caller)."""
        self.close()


def _string(value: Any) -> tuple[Any, bool]:
    if value is None or isinstance(value, str):
        return value, True
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")), True


def _float(value: Any) -> tuple[Any, bool]:
    if value is None:
        return None, True
    if isinstance(value, float):
        return value, True
    if isinstance(value, int) and not isinstance(value, bool):
        # Above 2**53 not every integer has a float64: one that would be rounded is kept whole.
        try:
            number = float(value)
        except OverflowError:
            return None, False
        return (number, True) if number == value else (None, False)
    return None, False


_INT64 = range(-(2**63), 2**63)


def _int(value: Any) -> tuple[Any, bool]:
    if value is None:
        return None, True
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in _INT64:
        return value, True
    return None, False


def _bool(value: Any) -> tuple[Any, bool]:
    return (value, True) if value is None or isinstance(value, bool) else (None, False)


_BEYOND_MICROSECONDS = re.compile(r"\.\d{6}0*[1-9]")
"""A fraction of a second with a digit past the sixth that is not zero."""


def _timestamp(value: Any) -> tuple[Any, bool]:
    if value is None:
        return None, True
    if isinstance(value, str) and not _BEYOND_MICROSECONDS.search(value):
        parsed = parse_timestamp(value)
        return (parsed, True) if parsed is not None else (None, False)
    return None, False


_CONVERTERS = {"string": _string, "float": _float, "int": _int, "bool": _bool, "timestamp": _timestamp}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "string"


def columns_from(rows: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Columns for rows of an undocumented shape: every key of ``rows``, typed by its first non-null value."""
    kinds: dict[str, str | None] = {}
    for row in rows:
        for name, value in row.items():
            if kinds.get(name) is None:
                kinds[name] = None if value is None else _kind_of(value)
    return tuple((name, kind or "string") for name, kind in kinds.items() if name != EXTRA_COLUMN)


class ParquetWriter:
    """
    Writes rows to Parquet with a fixed schema, a row group per :data:`ROW_GROUP_ROWS` rows.

    :param stream: the binary stream to write to.
    :param columns: ``(name, kind)`` pairs; ``None`` to take them from the first page.
    """

    def __init__(self, stream: IO[bytes], columns: Sequence[tuple[str, str]] | None) -> None:
        try:
            import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
            import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as exc:
            raise RuntimeError(
                f"format='parquet' needs pyarrow, which is not installed: {PARQUET_EXTRA}"
            ) from exc
        self._pa, self._pq = pa, pq
        self._stream = stream
        self._columns = tuple(columns) if columns is not None else None
        self._writer: Any = None
        self._schema: Any = None
        self._batches: list[Any] = []
        self._buffered = 0

    def _start(self, columns: Sequence[tuple[str, str]]) -> None:
        pa = self._pa
        types = {
            "string": pa.string(),
            "float": pa.float64(),
            "int": pa.int64(),
            "bool": pa.bool_(),
            "timestamp": pa.timestamp("us", tz="UTC"),
        }
        self._columns = tuple(columns)
        fields = [pa.field(name, types[kind]) for name, kind in self._columns]
        self._schema = pa.schema([*fields, pa.field(EXTRA_COLUMN, pa.string())])
        self._writer = self._pq.ParquetWriter(self._stream, self._schema)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Convert one page to an Arrow batch; write a row group once enough rows are buffered."""
        if self._writer is None:
            if not rows:
                return
            self._start(self._columns if self._columns is not None else columns_from(rows))
        assert self._columns is not None
        names = [name for name, _ in self._columns]
        known = frozenset(names)
        data: dict[str, list[Any]] = {name: [] for name in names}
        extras: list[str | None] = []
        for row in rows:
            extra = {name: value for name, value in row.items() if name not in known}
            for name, kind in self._columns:
                value, fits = _CONVERTERS[kind](row.get(name))
                data[name].append(value)
                if not fits:
                    extra[name] = row[name]
            extras.append(json.dumps(extra, ensure_ascii=False, separators=(",", ":")) if extra else None)
        arrays = [self._pa.array(data[name], type=self._schema.field(name).type) for name in names]
        arrays.append(self._pa.array(extras, type=self._pa.string()))
        self._batches.append(self._pa.RecordBatch.from_arrays(arrays, schema=self._schema))
        self._buffered += len(rows)
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._batches:
            self._writer.write_table(self._pa.Table.from_batches(self._batches, schema=self._schema))
            self._batches, self._buffered = [], 0

    def close(self) -> None:
        """Write the last row group and the footer (an export of no rows is a file of no columns)."""
        if self._writer is None:
            self._start(self._columns if self._columns is not None else ())
        self._flush()
        self._writer.close()

    def abort(self) -> None:
        """Stop writing after a failure, while the stream is still open (what was written is discarded)."""
        if self._writer is not None:
            self._writer.close()
