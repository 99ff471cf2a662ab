"""
Types for code that uses the provider: a lead, its status, and the keyword arguments of the hooks.

For editors and type checkers only; the hooks check every value at run time. These declarations
are also the provider's one list of filter names and lead fields (see ``_lead_vocabulary``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping  # noqa: TC003 - resolvable at run time too
from datetime import date, datetime
from typing import Any, Literal, TypedDict

__all__ = ["Attribution", "DateLike", "Lead", "LeadFilters", "LeadStatus", "LeadUpdate", "NewLead"]

LeadStatus = Literal["open", "qualified", "won", "lost"]
"""A lead's status, as Octanist returns it (the legacy ``win`` is always read as ``won``)."""

DateLike = datetime | date | str
"""A point in time: a datetime (naive means UTC), a date (its midnight UTC) or an ISO 8601 string."""


class Attribution(TypedDict, total=False):
    """Where a lead came from and what it consented to: click ids, UTM tags and consent flags."""

    gclid: str | None
    dclid: str | None
    wbraid: str | None
    gbraid: str | None
    ga4cid: str | None
    ga4sid: str | None
    fbc: str | None
    fbp: str | None
    msclkid: str | None
    ttclid: str | None
    twclid: str | None
    rdt_cid: str | None
    sccid: str | None
    epik: str | None
    li_fat_id: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    ad_storage: bool | str | None
    ad_user_data: bool | str | None
    ad_personalization: bool | str | None
    analytics_storage: bool | str | None


class Lead(Attribution, total=False):
    """A lead as Octanist returns it (``GET /leads``, ``GET /leads/{id}``); absent values are ``None``."""

    id: str
    name: str | None
    email: str | None
    phone: str | None
    note: str | None
    custom: str | None
    source: str | None
    website: str | None
    path: str | None
    labelId: str | None
    conversionName: str | None
    selectedConversionEventId: str | None
    status: LeadStatus
    value: float | None
    lossReason: str | None
    googleAdsCampaignId: str | None
    googleAdsCampaignName: str | None
    googleAdsAdGroupId: str | None
    googleAdsAdGroupName: str | None
    googleAdsAdId: str | None
    createdAt: str
    updatedAt: str
    qualifiedAt: str | None
    expiresAt: str | None
    previousStatus: LeadStatus | None
    """Only on leads the event trigger reported: the watched status the lead left, if any."""


class LeadFilters(TypedDict, total=False):
    """
    The keyword filters of ``iter_leads``/``list_leads``/``list_leads_page``; ``None`` means "not given".

    Time bounds take a :data:`DateLike`; ``filters`` passes raw API filters such as
    ``{"gclid[exists]": True}``.
    """

    status: str | None
    sort: str | None
    search: str | None
    fields: str | Iterable[str] | None
    source: str | None
    label_id: str | None
    website: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    created_gt: DateLike | None
    created_gte: DateLike | None
    created_lt: DateLike | None
    created_lte: DateLike | None
    updated_gt: DateLike | None
    updated_gte: DateLike | None
    updated_lt: DateLike | None
    updated_lte: DateLike | None
    qualified_gt: DateLike | None
    qualified_gte: DateLike | None
    qualified_lt: DateLike | None
    qualified_lte: DateLike | None
    value_gt: float | str | None
    value_gte: float | str | None
    value_lt: float | str | None
    value_lte: float | str | None
    page_size: int
    filters: Mapping[str, Any] | None


class NewLead(Attribution, total=False):
    """The fields ``create_lead`` takes; at least one of name, email, phone or custom."""

    name: str | None
    email: str | None
    phone: str | None
    custom: str | Mapping[str, Any] | list[Any] | None
    note: str | None
    sessionId: str | None
    website: str | None
    path: str | None


class LeadUpdate(TypedDict, total=False):
    """
    The keyword arguments of ``update_lead``: which lead (``lead_id``, else ``email``, else ``phone``)
    and what to change (``status``: qualified, won or lost; ``loss_reason`` only with ``lost``).
    """

    lead_id: str | None
    email: str | None
    phone: str | None
    status: str | None
    value: float | str | None
    note: str | None
    loss_reason: str | None
