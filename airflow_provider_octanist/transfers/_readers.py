"""
How rows are read back from one object: JSON Lines (gzip recognised by its content), CSV, Parquet.

The readers of the write-back, beside the export's writers (``_formats``): each yields the rows of
a binary stream one at a time, as plain dicts, so memory does not grow with the object's size.
What a row means is the write-back's business (``_write_back``); a reader only says what it read,
and a line it cannot read (not UTF-8, not JSON, not CSV) becomes a row that carries the reason
(counted and reported, not fatal): reading goes on at the next line. An object that cannot be read
past some point (a gzip stream cut short, a damaged Parquet batch) yields the rows before it, then
raises :class:`UnreadableInput`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, cast

from airflow_provider_octanist.transfers._formats import PARQUET_EXTRA

if TYPE_CHECKING:
    from collections.abc import Iterator

READ_FORMATS = ("jsonl", "csv", "parquet")
PARQUET_BATCH_ROWS = 10_000
"""Rows decoded from Parquet at a time (one Arrow record batch)."""

MAX_CELL_CHARS = 64 * 1024 * 1024
"""The longest CSV cell read (csv's own default, 131,072 characters, is shorter than a long note)."""

_GZIP_MAGIC = b"\x1f\x8b"
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
"""What ``surrogateescape`` decodes a byte that is not UTF-8 to."""


class UnreadableInput(ValueError):  # noqa: N818 - a ValueError, named for what it says
    """The object cannot be read past some point: the rows before it were read, the rest cannot be."""


class Unreadable:
    """A line or record that could not be read as a row; it stands in for that row, with the reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def check_read_format(file_format: Any) -> None:
    """Reject, when the DAG is parsed, a format the write-back cannot read."""
    if file_format not in READ_FORMATS:
        raise ValueError(f"format must be 'jsonl', 'csv' or 'parquet', got {file_format!r}.")
    if file_format == "parquet":
        from importlib.util import find_spec

        if find_spec("pyarrow") is None:
            raise ValueError(f"format='parquet' needs pyarrow, which is not installed: {PARQUET_EXTRA}")


def read_rows(stream: IO[bytes], file_format: str) -> Iterator[dict[str, Any] | Unreadable]:
    """
    Yield the rows of ``stream`` in order; a row that cannot be read is an ``Unreadable``.

    :param stream: the object, opened for binary reading (seekable for Parquet).
    :param file_format: ``jsonl``, ``csv`` or ``parquet``.
    """
    if file_format == "parquet":
        return _parquet_rows(stream)
    text = _text(_maybe_gunzip(stream))
    return _csv_rows(text) if file_format == "csv" else _json_lines(text)


def _maybe_gunzip(stream: IO[bytes]) -> IO[bytes]:
    """The stream itself, or its decompressed content when it starts with gzip's magic bytes."""
    buffered: Any = stream if hasattr(stream, "peek") else io.BufferedReader(cast("Any", stream))
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return cast("IO[bytes]", gzip.GzipFile(fileobj=buffered, mode="rb"))
    return cast("IO[bytes]", buffered)


def _text(stream: IO[bytes]) -> Iterator[str]:
    """
    Decode UTF-8 lines (a byte-order mark at the start is dropped).

    A byte that is not UTF-8 is kept as a lone surrogate (``surrogateescape``), for the format's
    reader to turn the row that holds it into an ``Unreadable`` and read on.
    """
    # readline, not iteration: Airflow 2.11's and 3.0's ObjectStoragePath hand out a file wrapper
    # that forwards methods but is not itself iterable.
    number = 0
    while True:
        try:
            line = stream.readline()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise UnreadableInput(
                f"the object cannot be read past line {number}: its gzip stream is cut short or damaged "
                f"({exc}); write it whole and run the task again"
            ) from None
        if not line:
            return
        number += 1
        yield line.decode("utf-8-sig" if number == 1 else "utf-8", "surrogateescape")


def _not_utf8(text: str) -> bool:
    return _NOT_UTF8.search(text) is not None


_NOT_UTF8_REASON = "is not UTF-8 text: write the file as UTF-8"


def _json_lines(lines: Iterator[str]) -> Iterator[dict[str, Any] | Unreadable]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue  # a blank line (the newline at the end of the file among them) is no row
        if _not_utf8(line):
            yield Unreadable(f"line {number} {_NOT_UTF8_REASON}")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Unreadable(f"line {number} is not JSON ({exc.msg})")
            continue
        if isinstance(row, dict):
            yield row
        else:
            yield Unreadable(f"line {number} is a JSON {type(row).__name__}, not an object")


@contextmanager
def _long_cells() -> Iterator[None]:
    """csv's field size limit raised to ``MAX_CELL_CHARS`` meanwhile, then set back (it is process-wide)."""
    previous = csv.field_size_limit(MAX_CELL_CHARS)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _csv_rows(lines: Iterator[str]) -> Iterator[dict[str, Any] | Unreadable]:
    reader = csv.reader(lines)
    names: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            # Raised only while this reader parses, so no other code sees the limit changed.
            with _long_cells():
                cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # The reader starts afresh at the next line.
            yield Unreadable(f"line {start} cannot be read as CSV ({exc})")
            continue
        if names is None:
            if any(_not_utf8(cell) for cell in cells):
                raise UnreadableInput(f"the header (line 1) {_NOT_UTF8_REASON}")
            names = [name.strip() for name in cells]
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if any(_not_utf8(cell) for cell in cells):
            yield Unreadable(f"line {start} {_NOT_UTF8_REASON}")
            continue
        if len(cells) != len(names):
            yield Unreadable(
                f"line {reader.line_num} has {len(cells)} cell(s) where the header names {len(names)}"
            )
            continue
        yield dict(zip(names, cells, strict=True))


def _parquet_rows(stream: IO[bytes]) -> Iterator[dict[str, Any] | Unreadable]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise RuntimeError(
            f"format='parquet' needs pyarrow, which is not installed: {PARQUET_EXTRA}"
        ) from exc
    try:
        parquet = pq.ParquetFile(stream)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(f"The object is not a Parquet file ({exc}); is format='parquet' right?") from None
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
    read = 0
    while True:
        try:
            batch = next(batches, None)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise UnreadableInput(f"the object cannot be read past row {read}: {exc}") from None
        if batch is None:
            return
        rows = batch.to_pylist()
        read += len(rows)
        yield from rows
