"""
The lead vocabulary: which filters, fields and statuses exist and what the API calls them.

The names come from the declarations in :mod:`airflow_provider_octanist.types` and
:mod:`airflow_provider_octanist.statuses`; request building, the hooks and the operators read them here.
"""

from __future__ import annotations

from airflow_provider_octanist.statuses import LEAD_STATUSES, LEGACY_ALIASES, SETTABLE_STATUSES
from airflow_provider_octanist.types import Attribution, LeadFilters, LeadUpdate, NewLead

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
]

LIST_FILTERS: tuple[str, ...] = tuple(LeadFilters.__annotations__)
"""Keyword filters of ``iter_leads`` and friends, in the order they go into the query."""

RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
"""Comparisons of time and value filters: ``updated_gte`` becomes ``updatedAt[gte]``."""

TIME_FILTERS = {"created": "createdAt", "updated": "updatedAt", "qualified": "qualifiedAt"}
"""Keyword prefix of a time bound -> the API field it compares."""

EQUALITY_FILTERS = {
    "source": "source",
    "label_id": "labelId",
    "website": "website",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
}
"""Keyword filter -> the API field it must equal."""

CONSENT_FIELDS = ("ad_storage", "ad_user_data", "ad_personalization", "analytics_storage")
"""Consent flags of a new lead: true/false or ``granted``/``denied``."""

CLICK_ID_FIELDS: tuple[str, ...] = tuple(
    name for name in Attribution.__annotations__ if not name.startswith("utm_") and name not in CONSENT_FIELDS
)
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

CREATE_FIELDS = NewLead.__optional_keys__
"""Fields a new lead (``POST /leads``) may have."""

UPDATE_FIELDS: tuple[str, ...] = tuple(LeadUpdate.__annotations__)
"""Keyword arguments of ``update_lead``: the lead's identifiers, then what to change."""
