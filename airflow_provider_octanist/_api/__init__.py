"""
What both hooks share, with no I/O: settings, calls, request building, answers, paging and retries.

The sync hook (requests) and the async hook (httpx) speak the API through these same modules, so
they send the same requests and parse the same answers. One module per concern:

- ``settings``: a connection's base URL, key, timeouts and retries;
- ``calls``: one call (method, path, query/body, replay safety) and its raw answer;
- ``lead_filters``: the query of ``GET /leads``; ``bodies``: the bodies of the other calls;
- ``responses``: the envelope and request ids; ``errors``: the status/code -> error table;
- ``paging``: listings page by page; ``retries``: what is retried, how long to wait, how long an
  attempt may take before the caller's deadline, and the error to give up with;
- ``json_values``: how many values an answer holds, counted before it is parsed.

The API key scrubbed from, and a cap on, whatever a server says back live beside this package in
``airflow_provider_octanist._redact``, as every layer quotes server texts.
"""

from __future__ import annotations

from airflow_provider_octanist._api.bodies import (
    MAX_AD_SPEND_PAGE_SIZE,
    ad_spend_body,
    create_lead_body,
    max_results_value,
    page_number,
    stats_body,
    update_lead_body,
)
from airflow_provider_octanist._api.calls import Answer, Call, lead_path, request_id_of, server_time_of
from airflow_provider_octanist._api.errors import error_for
from airflow_provider_octanist._api.lead_filters import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    lead_list_params,
)
from airflow_provider_octanist._api.paging import (
    MAX_PAGES,
    Listing,
    Page,
    Paging,
    ad_spend_listing,
    leads_listing,
    should_continue,
)
from airflow_provider_octanist._api.responses import (
    answer_too_large,
    check_lead,
    check_row,
    check_same_lead,
    legacy_check,
    legacy_created,
    legacy_list,
    legacy_updated,
    undecodable_answer,
    unwrap,
)
from airflow_provider_octanist._api.retries import (
    Attempts,
    Failure,
    attempt_limit,
    may_retry_status,
    retry_after_seconds,
    retry_wait,
    too_late_to_retry,
)
from airflow_provider_octanist._api.settings import (
    API_KEY_HEADER,
    DEFAULT_BACKOFF,
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_READ_TIMEOUT,
    MAX_RETRY_WAIT,
    USER_AGENT,
    Settings,
    normalize_base_url,
    settings_from_connection,
)
from airflow_provider_octanist._lead_vocabulary import normalize_sort
from airflow_provider_octanist._redact import cap, scrub, scrub_error

__all__ = [
    "API_KEY_HEADER",
    "DEFAULT_BACKOFF",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "MAX_AD_SPEND_PAGE_SIZE",
    "MAX_PAGES",
    "MAX_PAGE_SIZE",
    "MAX_RETRY_WAIT",
    "USER_AGENT",
    "Answer",
    "Attempts",
    "Call",
    "Failure",
    "Listing",
    "Page",
    "Paging",
    "Settings",
    "ad_spend_body",
    "ad_spend_listing",
    "answer_too_large",
    "attempt_limit",
    "cap",
    "check_lead",
    "check_row",
    "check_same_lead",
    "create_lead_body",
    "error_for",
    "lead_list_params",
    "lead_path",
    "leads_listing",
    "legacy_check",
    "legacy_created",
    "legacy_list",
    "legacy_updated",
    "max_results_value",
    "may_retry_status",
    "normalize_base_url",
    "normalize_sort",
    "page_number",
    "request_id_of",
    "retry_after_seconds",
    "retry_wait",
    "scrub",
    "scrub_error",
    "server_time_of",
    "settings_from_connection",
    "should_continue",
    "stats_body",
    "too_late_to_retry",
    "undecodable_answer",
    "unwrap",
    "update_lead_body",
]
