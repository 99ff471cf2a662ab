"""
The lead vocabulary: which filters, fields and statuses exist and what the API calls them.

Request building, the hooks and the operators read the names here. Plain tuples, cheap to import
while DAG files are parsed; ``types.py`` spells the same names out for editors (a test keeps them equal).
"""

from __future__ import annotations

from airflow_provider_octanist._checks import non_empty_text
from airflow_provider_octanist.statuses import LEAD_STATUSES, LEGACY_ALIASES, SETTABLE_STATUSES

__all__ = [
    "CLICK_ID_FIELDS",
    "CONSENT_FIELDS",
    "CREATE_FIELDS",
    "EQUALITY_FILTERS",
    "LEAD_STATUSES",
    "LEGACY_ALIASES",
    "LIST_FILTERS",
    "RANGE_OPERATORS",
    "RAW_FILTER_FIELDS",
    "SETTABLE_STATUSES",
    "SNAKE_SORT",
    "SORTABLE_FIELDS",
    "TIME_FILTERS",
    "UPDATE_FIELDS",
    "UTM_FIELDS",
    "normalize_sort",
]

RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
"""Comparisons of time and value filters: ``updated_gte`` becomes ``updatedAt[gte]``."""

TIME_FILTERS = {"created": "createdAt", "updated": "updatedAt", "qualified": "qualifiedAt"}
"""Keyword prefix of a time bound -> the API field it compares."""

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")

EQUALITY_FILTERS = {
    "source": "source",
    "label_id": "labelId",
    "website": "website",
    **{u: u for u in UTM_FIELDS},
}
"""Keyword filter -> the API field it must equal."""

LIST_FILTERS: tuple[str, ...] = (
    "status",
    "sort",
    "search",
    "fields",
    *EQUALITY_FILTERS,
    *(f"{field}_{op}" for field in (*TIME_FILTERS, "value") for op in RANGE_OPERATORS),
    "page_size",
    "filters",
)
"""Keyword filters of ``iter_leads`` and friends (``types.LeadFilters``), in query order."""

CONSENT_FIELDS = ("ad_storage", "ad_user_data", "ad_personalization", "analytics_storage")
"""Consent flags of a new lead: true/false or ``granted``/``denied``."""

CLICK_ID_FIELDS = (
    "gclid", "dclid", "wbraid", "gbraid", "ga4cid", "ga4sid", "fbc", "fbp",
    "msclkid", "ttclid", "twclid", "rdt_cid", "sccid", "epik", "li_fat_id",
)  # fmt: skip
"""Ad-platform click ids: settable on a new lead, filterable with ``[exists]``."""

RAW_FILTER_FIELDS: dict[str, tuple[str, ...]] = {
    "status": ("eq",),
    **dict.fromkeys(EQUALITY_FILTERS.values(), ("eq",)),
    "value": ("eq", *RANGE_OPERATORS),
    **dict.fromkeys(TIME_FILTERS.values(), (*RANGE_OPERATORS, "exists")),
    **dict.fromkeys(CLICK_ID_FIELDS, ("exists",)),
}
"""API field -> the operators ``GET /leads`` documents for it (raw filters such as ``gclid[exists]``)."""

SORTABLE_FIELDS = ("createdAt", "updatedAt", "qualifiedAt", "value", "name", "email", "status")
SNAKE_SORT = {"created_at": "createdAt", "updated_at": "updatedAt", "qualified_at": "qualifiedAt"}
"""The legacy snake_case sort fields (``updated_at:asc``) and their current names."""

CREATE_FIELDS = frozenset(
    ("name", "email", "phone", "custom", "note", "sessionId", "website", "path",
     *CLICK_ID_FIELDS, *UTM_FIELDS, *CONSENT_FIELDS)
)  # fmt: skip
"""Fields a new lead (``POST /leads``) may have (``types.NewLead``)."""

UPDATE_FIELDS = ("lead_id", "email", "phone", "status", "value", "note", "loss_reason")
"""Keyword arguments of ``update_lead`` (``types.LeadUpdate``): which lead, then what to change."""


def normalize_sort(sort: str) -> str:
    """Validate ``field:direction``; the legacy snake_case ``updated_at:asc`` is accepted."""
    text = non_empty_text(sort, "sort")
    name, _, direction = text.partition(":")
    name = SNAKE_SORT.get(name.strip(), name.strip())
    direction = (direction.strip() or "asc").lower()
    if name not in SORTABLE_FIELDS or direction not in ("asc", "desc"):
        raise ValueError(
            f"sort must look like 'updatedAt:asc' with a field of {', '.join(SORTABLE_FIELDS)} "
            f"and a direction asc or desc, got {sort!r}."
        )
    return f"{name}:{direction}"
