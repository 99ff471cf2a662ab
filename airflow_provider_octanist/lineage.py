"""
Lineage: how Octanist data is named for OpenLineage and Airflow assets, and what each transfer reports.

An Octanist dataset is namespace ``octanist://<host>`` (the connection's base URL host, with the port
only when it is not the default) and name ``leads`` or ``ad-spend``; as an Airflow asset it is
``octanist://<host>/leads``. The other side of a transfer is named as the OpenLineage naming spec
names it: ``file`` and an absolute path, ``s3://bucket`` and a key, a SQL table through common.sql.

Nothing here imports OpenLineage or Airflow until a function needs it: Airflow imports this module
while it discovers providers, and the OpenLineage provider is optional. Without it, every function
that builds OpenLineage objects returns ``None``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AD_SPEND",
    "DATASETS",
    "LEADS",
    "SCHEME",
    "asset_uri",
    "convert_asset_to_openlineage",
    "hook_lineage_collector",
    "lead_schema",
    "namespace",
    "object_to_octanist_lineage",
    "octanist_to_object_lineage",
    "report_to_hook_lineage",
    "sanitize_uri",
    "sql_to_octanist_lineage",
    "storage_name",
]

SCHEME = "octanist"
"""The URI scheme of Octanist datasets and assets."""
LEADS = "leads"
AD_SPEND = "ad-spend"
DATASETS = (LEADS, AD_SPEND)
"""The names of the Octanist datasets: the leads, and the ad-spend report."""

_DEFAULT_PORTS = {"https": 443, "http": 80}
_LOCAL_PROTOCOLS = frozenset({"file", "local"})
# Only on leads the event trigger reports, never a field of the leads themselves.
_NOT_LEAD_FIELDS = frozenset({"previousStatus"})


# -- names ------------------------------------------------------------------------------------------


def namespace(base_url: str) -> str:
    """
    The OpenLineage namespace of an Octanist API: ``octanist://<host>``, ``octanist://<host>:<port>``.

    :param base_url: the connection's base URL, e.g. ``https://octanist.com/api``.
    """
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if not host:
        raise ValueError(
            f"An Octanist base URL needs a host, such as https://octanist.com/api; got {base_url!r}."
        )
    if ":" in host:  # an IPv6 address keeps its brackets in a URL
        host = f"[{host}]"
    port = parts.port
    authority = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"
    return f"{SCHEME}://{authority}"


def asset_uri(base_url: str, dataset: str) -> str:
    """
    The Airflow asset URI of an Octanist dataset, e.g. ``octanist://octanist.com/leads``.

    :param base_url: the connection's base URL.
    :param dataset: ``leads`` or ``ad-spend``.
    """
    _check_dataset(dataset)
    return f"{namespace(base_url)}/{dataset}"


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Normalize an ``octanist://`` asset URI (the handler in the provider info); refuse none.

    The lineage names, ``octanist://<host>/leads`` and ``octanist://<host>/ad-spend``, get a
    lower-case host and lose any query, so every spelling of one names the dataset the operators
    report. Any other ``octanist://`` URI (``octanist://leads/won``, ``octanist://anything``) is an
    asset of the DAG author's own naming, valid before the scheme was registered: it is returned as
    Airflow gave it.

    :param uri: the split URI, as Airflow passes it.
    """
    dataset = _dataset_of(uri)
    if dataset is None:
        return uri
    return uri._replace(netloc=uri.netloc.lower(), path=f"/{dataset}", query="", fragment="")


def _dataset_of(uri: SplitResult) -> str | None:
    """The Octanist dataset a lineage name names (``leads``, ``ad-spend``); ``None`` for any other URI."""
    dataset = uri.path.strip("/")
    return dataset if uri.netloc and dataset in DATASETS else None


def storage_name(url: str) -> tuple[str, str]:
    """
    The OpenLineage (namespace, name) of an object-storage URL, as the naming spec has them.

    ``file:///data/x.jsonl`` is ``("file", "/data/x.jsonl")``; ``s3://lake/a/b.jsonl`` is
    ``("s3://lake", "a/b.jsonl")``; likewise ``gs://``, ``abfs://`` and any store with a bucket.

    :param url: ``protocol://path`` as the export summary's ``path`` gives it.
    """
    protocol, sep, rest = url.partition("://")
    if not sep or not protocol:
        raise ValueError(f"An object-storage URL has a scheme, such as s3://bucket/key; got {url!r}.")
    protocol = protocol.lower()
    if protocol in _LOCAL_PROTOCOLS:
        return "file", "/" + rest.lstrip("/")
    if protocol == "gcs":  # gcsfs answers to both; the spec says gs
        protocol = "gs"
    bucket, _, key = rest.lstrip("/").partition("/")
    return f"{protocol}://{bucket}", key or "/"


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"Octanist datasets are 'leads' and 'ad-spend'; got {dataset!r}.")


# -- OpenLineage ------------------------------------------------------------------------------------


def convert_asset_to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """
    The OpenLineage dataset of an ``octanist://`` asset (the converter in the provider info).

    :param asset: an Airflow asset whose URI has the ``octanist`` scheme.
    :param lineage_context: what Airflow passes along (unused: the URI says everything).
    :returns: ``None`` for a URI that is not a lineage name (``octanist://leads/won``): it names no
        Octanist dataset.
    """
    parts = sanitize_uri(urlsplit(asset.uri))
    dataset = _dataset_of(parts)
    if dataset is None:
        return None
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=f"{SCHEME}://{parts.netloc}", name=dataset, facets=_octanist_facets(dataset))


def octanist_to_object_lineage(
    base_url: str, dataset: str, url: str, *, rows: int | None = None, size: int | None = None
) -> Any:
    """
    The ``OperatorLineage`` of an export: the Octanist dataset in, the object at ``url`` out.

    :param base_url: the Octanist connection's base URL.
    :param dataset: ``leads`` or ``ad-spend``.
    :param url: the object's URL (``file:///...``, ``s3://bucket/key``...).
    :param rows: the rows written, once known (the output's statistics).
    :param size: the object's size in bytes, once known.
    :returns: ``None`` when the OpenLineage provider is not installed.
    """
    if (found := _openlineage()) is None:
        return None
    facet, operator_lineage = found
    namespace_, name = storage_name(url)
    written = facet.OutputDataset(
        namespace=namespace_, name=name, outputFacets=_statistics(facet, rows, size)
    )
    return operator_lineage(
        inputs=[_octanist_dataset(facet.InputDataset, base_url, dataset)], outputs=[written]
    )


def object_to_octanist_lineage(
    url: str, base_url: str, *, rows: int | None = None, dry_run: bool = False
) -> Any:
    """
    The ``OperatorLineage`` of a write-back from object storage: the object at ``url`` in, the leads out.

    :param url: the object's URL (``file:///...``, ``s3://bucket/key``...).
    :param base_url: the Octanist connection's base URL.
    :param rows: the leads updated, once known (the output's statistics).
    :param dry_run: the write-back sent nothing: the object in, no output.
    :returns: ``None`` when the OpenLineage provider is not installed.
    """
    if (found := _openlineage()) is None:
        return None
    facet, operator_lineage = found
    namespace_, name = storage_name(url)
    return operator_lineage(
        inputs=[facet.InputDataset(namespace=namespace_, name=name)],
        outputs=_leads_written(facet, base_url, rows, dry_run),
    )


def sql_to_octanist_lineage(
    hook: Any,
    sql: str | Sequence[str],
    conn_id: str,
    base_url: str,
    *,
    rows: int | None = None,
    dry_run: bool = False,
) -> Any:
    """
    The ``OperatorLineage`` of a write-back from SQL: the tables ``sql`` reads in, the leads out.

    The tables are found by common.sql's OpenLineage SQL parsing with the hook's database info. A
    hook that gives none (SQLite's) gets the tables the SQL names, in namespace
    ``<conn_type>://<host>[:<port>]`` of its connection (``sqlite:///path/to.db``, table
    ``main.<table>``). The query itself is the ``sql`` job facet.

    :param hook: the ``DbApiHook`` the rows are read through.
    :param sql: the query (or queries).
    :param conn_id: the hook's connection id.
    :param base_url: the Octanist connection's base URL.
    :param rows: the leads updated, once known (the output's statistics).
    :param dry_run: the write-back sent nothing: the tables in, no output.
    :returns: ``None`` when the OpenLineage provider is not installed.
    """
    if (found_facets := _openlineage()) is None:
        return None
    facet, operator_lineage = found_facets
    statements = sql if isinstance(sql, str) else list(sql)
    from airflow.providers.common.compat.openlineage.utils.sql import get_openlineage_facets_with_sql

    found = get_openlineage_facets_with_sql(hook=hook, sql=statements, conn_id=conn_id, database=None)
    if found is None:
        found = _parsed_sql_lineage(hook, statements, conn_id)
    return operator_lineage(
        inputs=list(found.inputs),
        outputs=_leads_written(facet, base_url, rows, dry_run),
        run_facets=dict(found.run_facets),
        job_facets=dict(found.job_facets),
    )


def _leads_written(facet: Any, base_url: str, rows: int | None, dry_run: bool) -> list[Any]:
    """
    The outputs of a write-back: the Octanist leads, with the leads updated once known.

    A dry run wrote nothing, so it has no output: an output would tell a lineage consumer (Marquez,
    a catalogue) that the leads have a new version made by this job.
    """
    if dry_run:
        return []
    return [_octanist_dataset(facet.OutputDataset, base_url, LEADS, _statistics(facet, rows))]


def _parsed_sql_lineage(hook: Any, sql: str | list[str], conn_id: str) -> Any:
    from airflow.providers.openlineage.sqlparser import DatabaseInfo, SQLParser

    connection = hook.get_connection(conn_id)
    authority = connection.host or None
    if authority and connection.port:
        authority = f"{authority}:{connection.port}"
    # SQLite calls its one schema "main"; DbApiHook's default would say "public".
    schema = "main" if connection.conn_type == "sqlite" else hook.get_openlineage_default_schema()
    parser = SQLParser(default_schema=schema)
    return parser.generate_openlineage_metadata_from_sql(
        sql=sql,
        hook=hook,
        database_info=DatabaseInfo(scheme=connection.conn_type or "sql", authority=authority),
        use_connection=False,
    )


def _openlineage() -> tuple[Any, Any] | None:
    """The facet module and ``OperatorLineage``, or ``None`` without the OpenLineage provider."""
    try:
        from airflow.providers.common.compat.openlineage import facet
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return facet, OperatorLineage


def _octanist_dataset(
    kind: Any, base_url: str, dataset: str, output_facets: dict[str, Any] | None = None
) -> Any:
    _check_dataset(dataset)
    extra = {"outputFacets": output_facets} if output_facets else {}
    return kind(namespace=namespace(base_url), name=dataset, facets=_octanist_facets(dataset), **extra)


def _octanist_facets(dataset: str) -> dict[str, Any]:
    from airflow.providers.common.compat.openlineage.facet import (
        SchemaDatasetFacet,
        SchemaDatasetFacetFields,
    )

    if dataset != LEADS:  # Octanist does not document the ad-spend rows' fields
        return {}
    fields = [SchemaDatasetFacetFields(name=name, type=kind) for name, kind in lead_schema()]
    return {"schema": SchemaDatasetFacet(fields=fields)}


def lead_schema() -> list[tuple[str, str]]:
    """Every field of a lead and its type (``string``, ``float``, ``boolean``), from ``types.Lead``."""
    import typing

    from airflow_provider_octanist.types import Attribution, Lead

    hints = typing.get_type_hints(Lead)
    # The lead's own fields first (id, name...), then the attribution it shares with a new lead.
    names = [name for name in hints if name not in Attribution.__annotations__]
    names += [name for name in hints if name in Attribution.__annotations__]
    return [(name, _type_name(hints[name])) for name in names if name not in _NOT_LEAD_FIELDS]


def _type_name(annotation: Any) -> str:
    import typing

    options = [option for option in typing.get_args(annotation) or (annotation,) if option is not type(None)]
    first = options[0]
    if typing.get_origin(first) is typing.Literal:
        first = type(typing.get_args(first)[0])
    return {bool: "boolean", float: "float", int: "integer"}.get(first, "string")


def _statistics(facet: Any, rows: int | None, size: int | None = None) -> dict[str, Any]:
    if rows is None:
        return {}
    return {"outputStatistics": facet.OutputStatisticsOutputDatasetFacet(rowCount=rows, size=size)}


# -- hook lineage -----------------------------------------------------------------------------------


def hook_lineage_collector() -> Any:
    """
    Airflow's hook lineage collector, or ``None`` when it collects nothing (no lineage reader).

    Without a reader, the common case, this costs about a microsecond: the hooks ask on every call.
    """
    collector = _airflow_collector_getter()()
    if type(collector).__name__ == "NoOpCollector":
        return None
    if not hasattr(collector, "add_input_asset"):
        # Airflow 2's collector says "dataset"; common-compat gives it the asset names.
        from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

        collector = get_hook_lineage_collector()
    return collector


@functools.cache
def _airflow_collector_getter() -> Any:
    """Airflow's ``get_hook_lineage_collector``, looked up once per process."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # Airflow 2.11 and 3.0 keep it in core
        from airflow.lineage.hook import get_hook_lineage_collector
    return get_hook_lineage_collector


def report_to_hook_lineage(context: Any, base_url: str, dataset: str, *, output: bool = False) -> None:
    """
    Tell Airflow's hook lineage collector that ``context`` (a hook) read or wrote an Octanist dataset.

    :param context: the hook that made the call.
    :param base_url: its connection's base URL.
    :param dataset: ``leads`` or ``ad-spend``.
    :param output: ``True`` for a change (create, update), ``False`` for a read.
    """
    collector = hook_lineage_collector()
    if collector is None:
        return
    uri = asset_uri(base_url, dataset)
    if output:
        collector.add_output_asset(context=context, uri=uri)
    else:
        collector.add_input_asset(context=context, uri=uri)
