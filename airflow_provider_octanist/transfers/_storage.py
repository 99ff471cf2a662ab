"""
Where an export goes: Airflow's ``ObjectStoragePath`` on every Airflow line, and a write that is
all or nothing.

An export is written to a temporary sibling (``.<name>.<token>.tmp``, a dot name that Hadoop, Spark
and Hive listings skip) and moved onto ``path`` only once it is complete; any failure aborts the
upload in flight (an S3 multipart upload included) and deletes the temporary object. On a local
file system the move is a ``rename``, atomic; on object stores (S3, GCS, Azure, ``memory://``)
fsspec moves by a server-side copy and a delete, and the copy makes the object appear whole. Either
way a reader of ``path`` sees the previous object or the complete new one, never a part, and a task
retry writes the whole object again.
"""

from __future__ import annotations

import importlib
import logging
import uuid
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

log = logging.getLogger(__name__)

T = TypeVar("T")

_LOCAL_PROTOCOLS = frozenset({"file", "local"})


def airflow_io() -> ModuleType:
    """
    Return Airflow's object-storage package: ``airflow.sdk.io`` on Airflow 3, ``airflow.io`` on 2.11.

    Both have the modules ``path`` (``ObjectStoragePath``) and ``store`` (``attach``). Imported only
    when a task runs: it pulls in fsspec.
    """
    try:
        return importlib.import_module("airflow.sdk.io")
    except ImportError:  # Airflow 2
        return importlib.import_module("airflow.io")


def object_storage_path(url: str, conn_id: str | None = None) -> Any:
    """
    Return ``ObjectStoragePath(url, conn_id=conn_id)`` of the running Airflow.

    A ``memory://`` URL without a connection gets fsspec's in-process store, for tests: no provider
    registers it with Airflow.
    """
    package = airflow_io().__name__
    if url.startswith("memory://") and conn_id is None:
        from fsspec.implementations.memory import (  # type: ignore[import-untyped,unused-ignore]
            MemoryFileSystem,
        )

        importlib.import_module(f"{package}.store").attach(protocol="memory", fs=MemoryFileSystem())
    path_class = importlib.import_module(f"{package}.path").ObjectStoragePath
    try:
        return path_class(url, conn_id=conn_id)
    except TypeError as exc:
        # Airflow releases before its fix for universal-pathlib 0.3 (3.0.x among them) reject every
        # URL this way; Airflow's constraints files pin universal-pathlib < 0.3 for them.
        raise RuntimeError(
            f"Airflow's ObjectStoragePath could not be created for {url!r} ({exc}). On Airflow 3.0, "
            "install universal-pathlib<0.3, as Airflow's constraints file for that release does."
        ) from exc


def check_path(path: Any, storage_conn_id: str | None) -> None:
    """
    Reject, when the DAG is parsed, a ``path`` that can never name an object.

    :param path: a URL string (possibly a template) or an ``ObjectStoragePath``.
    :param storage_conn_id: the storage connection id, if any.
    """
    if storage_conn_id is not None and (not isinstance(storage_conn_id, str) or not storage_conn_id.strip()):
        raise ValueError(f"storage_conn_id must be a connection id or None, got {storage_conn_id!r}.")
    if isinstance(path, str):
        if not path.strip():
            raise ValueError(
                "path must be a URL such as 's3://bucket/octanist/leads/{{ ds }}.jsonl', got ''."
            )
        return
    if not hasattr(path, "fs") or not hasattr(path, "open"):
        raise ValueError(
            "path must be a URL string (file:///..., s3://..., gs://..., memory://...) or an "
            f"ObjectStoragePath, got {type(path).__name__}."
        )
    if storage_conn_id is not None:
        raise ValueError(
            "storage_conn_id applies to a URL path; an ObjectStoragePath carries its own connection "
            "(ObjectStoragePath(url, conn_id=...))."
        )


def resolve(path: Any, storage_conn_id: str | None) -> Any:
    """
    Return the ``ObjectStoragePath`` of a rendered ``path``, which must name one object.

    A path ending in ``/`` or naming an existing directory (a prefix holding objects, on an object
    store) is refused here, before any request: the write would otherwise land in a hidden
    temporary object inside it, or make a file of what was meant as a folder.

    :param path: a URL string such as ``s3://bucket/key.jsonl`` or an ``ObjectStoragePath``.
    :param storage_conn_id: the connection the store needs, for a URL path.
    """
    if isinstance(path, str):
        url = path.strip()
        if "://" not in url:
            raise ValueError(
                f"path must be a URL with a scheme, such as file:///data/leads.jsonl or "
                f"s3://bucket/leads.jsonl, got {path!r}."
            )
        if url.endswith("/"):
            raise ValueError(
                f"path {url!r} ends with '/', so it names a folder, not an object; add the object's "
                "name, such as leads.jsonl."
            )
        target = object_storage_path(url, storage_conn_id)
    else:
        target = path
    if target.fs.isdir(target.path):
        raise ValueError(
            f"path {describe(target)} is an existing directory, not an object; add the name of the "
            "object to write in it, such as leads.jsonl."
        )
    return target


def url_of(path: Any) -> str:
    """
    The URL a rendered ``path`` names, without resolving it: the URL string itself, or an
    ``ObjectStoragePath``'s (see ``describe``).
    """
    return path.strip() if isinstance(path, str) else describe(path)


def describe(target: Any) -> str:
    """
    The URL of ``target`` for the summary and the logs: ``protocol://path``.

    Without the connection id that ``str(ObjectStoragePath)`` puts where a URL's user name goes.
    """
    protocol = target.protocol if isinstance(target.protocol, str) else target.protocol[0]
    text = str(target.path)
    text = "/" + text.lstrip("/") if protocol in _LOCAL_PROTOCOLS else text.lstrip("/")
    return f"{protocol}://{text}"


def write_whole(target: Any, write: Callable[[IO[bytes]], T], *, lineage: bool = True) -> tuple[T, int]:
    """
    Write ``target`` through ``write(stream)`` all or nothing; return its result and the object's size.

    :param target: the ``ObjectStoragePath`` to create or replace.
    :param write: writes the content to the binary stream it is given.
    :param lineage: report ``target`` to Airflow's lineage as an output (not for the task's own
        bookkeeping, such as a write-back's state, saved many times a run).
    """
    fs = target.fs
    temporary = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if protocols & _LOCAL_PROTOCOLS:
        # A local directory must exist before a file can be created in it; object stores have no
        # directories (and s3fs would create a bucket).
        fs.makedirs(target.parent.path, exist_ok=True)
    try:
        # Through the file system, not ObjectStoragePath.open, which would report the temporary
        # object to Airflow's lineage on every write; the target is reported once, below.
        stream = fs.open(temporary.path, "wb")
        try:
            result = write(stream)
        except BaseException:
            _abandon(stream)
            raise
        stream.close()
        size = int(fs.size(temporary.path))
        fs.mv(temporary.path, target.path)
    except BaseException:
        _discard(fs, temporary)
        raise
    if lineage:
        _report_lineage(target)
    return result, size


def _report_lineage(target: Any) -> None:
    """Tell Airflow's hook lineage collector that the task wrote ``target``."""
    from airflow_provider_octanist.lineage import hook_lineage_collector

    collector = hook_lineage_collector()
    if collector is not None:
        collector.add_output_asset(context=target, uri=describe(target))


def _abandon(stream: Any) -> None:
    """
    Close a failed write without committing it.

    Closing an fsspec buffered file uploads what it holds: s3fs would complete the multipart upload
    (or PUT the part written so far) and gcsfs finish its resumable upload, only for the temporary
    object to be deleted after. ``discard()`` aborts the upload instead (s3fs's abort of the
    multipart upload, so no unfinished upload is left to be billed), and the file is marked closed
    so that nothing flushes it. Other files (local, ``memory://``) are simply closed; the temporary
    object is deleted after either way.
    """
    from fsspec.spec import AbstractBufferedFile  # type: ignore[import-untyped,unused-ignore]

    if isinstance(stream, AbstractBufferedFile) and "w" in stream.mode:
        try:
            stream.discard()
        finally:
            stream.closed = True
        return
    stream.close()


def _discard(fs: Any, temporary: Any) -> None:
    try:
        if fs.exists(temporary.path):
            fs.rm(temporary.path)
    except Exception:  # the export's own error matters more; say where the leftover is
        log.warning("Could not delete the partial export %s; delete it by hand.", describe(temporary))
