"""Unit specification of ``_api``: what both hooks share, with no I/O."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import date, datetime, timezone
from typing import Any

import pytest

from airflow_provider_octanist import __version__
from airflow_provider_octanist import _api as api
from airflow_provider_octanist._api import json_values, paging
from airflow_provider_octanist.exceptions import (
    OctanistConnectionError,
    OctanistResponseError,
    OctanistTimeoutError,
)

SETTINGS = api.Settings(conn_id="octanist_default", base_url=api.DEFAULT_BASE_URL, api_key="K", backoff=1.0)
LIST = api.Call("GET", "/leads", {"limit": "100"})
CREATE = api.Call("POST", "/leads", body={"name": "x"}, replay_safe=False)
LOG = logging.getLogger("tests.api")


# -- list parameters ---------------------------------------------------------------------------


def test_list_params_default_to_the_largest_page() -> None:
    assert api.lead_list_params() == {"limit": "100"}


def test_list_params_use_the_api_names_and_operators() -> None:
    params = api.lead_list_params(
        status=" Won ",
        source="gtm",
        label_id="lbl_1",
        website="https://example.com",
        utm_source="news",
        utm_medium="mail",
        utm_campaign="spring",
        search=" ada ",
        fields="email, name,email",
        sort="createdAt:DESC",
        page_size=25,
        created_gt="2026-01-01",
        updated_lte=datetime(2026, 2, 1, 12, 0),
        qualified_gte=date(2026, 1, 5),
        value_gt=10,
        value_lt=99.5,
        filters={"gclid[exists]": True, "labelId": "lbl_2", "value[gte]": "5", "updatedAt[lt]": "2026-03-01"},
    )

    assert params == {
        "limit": "25",
        "status": "won",
        "sort": "createdAt:desc",
        "search": "ada",
        "fields": "id,email,name",
        "source": "gtm",
        "labelId": "lbl_2",  # the raw filter, applied last, wins
        "website": "https://example.com",
        "utm_source": "news",
        "utm_medium": "mail",
        "utm_campaign": "spring",
        "createdAt[gt]": "2026-01-01T00:00:00.000Z",
        "updatedAt[lte]": "2026-02-01T12:00:00.000Z",
        "qualifiedAt[gte]": "2026-01-05T00:00:00.000Z",
        "value[gt]": "10",
        "value[lt]": "99.5",
        "gclid[exists]": "true",
        "value[gte]": "5",
        "updatedAt[lt]": "2026-03-01T00:00:00.000Z",
    }


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("updatedAt:asc", "updatedAt:asc"),
        ("updatedAt", "updatedAt:asc"),
        ("updated_at:desc", "updatedAt:desc"),
        (" created_at : ASC ", "createdAt:asc"),
        ("value:desc", "value:desc"),
    ],
)
def test_sort_accepts_current_and_legacy_spellings(sort: str, expected: str) -> None:
    assert api.normalize_sort(sort) == expected


def test_status_win_is_the_legacy_spelling_of_won() -> None:
    assert api.lead_list_params(status="win")["status"] == "won"
    assert api.lead_list_params(filters={"status": "WIN"})["status"] == "won"


def test_fields_as_a_list() -> None:
    assert api.lead_list_params(fields=["status", "id", "updatedAt"])["fields"] == "id,status,updatedAt"


@pytest.mark.parametrize(
    ("lead_id", "path"),
    [
        ("lead_abc123", "/leads/lead_abc123"),
        ("a/b", "/leads/a%2Fb"),
        ("a?b#c", "/leads/a%3Fb%23c"),
        ("50%", "/leads/50%25"),
        ("../check", "/leads/..%2Fcheck"),
        ("léad", "/leads/l%C3%A9ad"),
        (" lead 1 ", "/leads/lead%201"),
    ],
)
def test_lead_paths_keep_the_id_in_one_segment(lead_id: str, path: str) -> None:
    assert api.lead_path(lead_id) == path


# -- bodies ------------------------------------------------------------------------------------


def test_create_body_drops_none_and_keeps_documented_fields() -> None:
    body = api.create_lead_body(
        {"name": "Ada", "email": None, "custom": {"a": 1}, "analytics_storage": "granted", "sessionId": "s-1"}
    )

    assert body == {"name": "Ada", "custom": '{"a":1}', "analytics_storage": "granted", "sessionId": "s-1"}


@pytest.mark.parametrize(
    ("custom", "sent"),
    [
        ({"company": "Acme", "seats": 12}, '{"company":"Acme","seats":12}'),
        (["a", "b"], '["a","b"]'),
        ({"city": "Zürich"}, '{"city":"Zürich"}'),
        ('{"company": "Acme"}', '{"company": "Acme"}'),
        ("free text, not JSON", "free text, not JSON"),
    ],
)
def test_custom_is_sent_as_a_string_as_production_documents_it(custom: Any, sent: str) -> None:
    assert api.create_lead_body({"name": "Ada", "custom": custom})["custom"] == sent


@pytest.mark.parametrize(
    ("custom", "words"),
    [
        ({"when": datetime(2026, 1, 1)}, "Object of type datetime is not JSON serializable"),
        ({"value": float("nan")}, "Out of range float values are not JSON compliant"),
        (3, "custom must be a string, a dict or a list, got int"),
    ],
)
def test_custom_that_cannot_be_json_is_refused_naming_it(custom: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        api.create_lead_body({"name": "Ada", "custom": custom})
    assert str(caught.value).startswith("custom must")


def test_request_ids_are_capped_wherever_they_come_from() -> None:
    from_meta = api.request_id_of({"meta": {"requestId": "r" * 2_000_000}}, {})
    from_header = api.request_id_of(None, {"X-Request-Id": "h" * 60_000})

    assert from_meta == "r" * 99 + "\u2026"
    assert from_header == "h" * 99 + "\u2026"
    assert api.request_id_of(None, {"X-Request-Id": "req_a1b2c3d4e5f6"}) == "req_a1b2c3d4e5f6"


def test_update_body_by_phone_with_a_numeric_string_value() -> None:
    body = api.update_lead_body(
        {
            "lead_id": None,
            "email": None,
            "phone": "+3120",
            "status": "Qualified",
            "value": " 250.50 ",
            "note": "",
            "loss_reason": None,
        }
    )

    assert body == {"phone": "+3120", "status": "qualified", "value": 250.5, "note": ""}


def test_update_body_sends_every_identifier_given() -> None:
    body = api.update_lead_body(
        {
            "lead_id": " lead_1 ",
            "email": "a@example.com",
            "phone": None,
            "status": "won",
            "value": 1,
            "note": None,
            "loss_reason": None,
        }
    )

    assert body == {"id": "lead_1", "email": "a@example.com", "status": "won", "value": 1}


def test_stats_body_implies_custom_from_dates() -> None:
    assert api.stats_body(None, date(2026, 1, 1), "2026-01-31") == {
        "period": "custom",
        "startDate": "2026-01-01",
        "endDate": "2026-01-31",
    }
    assert api.stats_body("previous", None, None) == {"period": "previous"}


def test_ad_spend_body() -> None:
    assert api.ad_spend_body("2026-03-01", "2026-03-01", "meta_ads", None, 500) == {
        "startDate": "2026-03-01",
        "endDate": "2026-03-01",
        "limit": 500,
        "platform": "meta_ads",
    }


# -- base URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        (None, None, None, "https://octanist.com/api"),
        ("", "", None, "https://octanist.com/api"),
        ("octanist.com", None, None, "https://octanist.com/api"),
        ("https://octanist.com/", None, None, "https://octanist.com/api"),
        ("api.example.com", "https", 8443, "https://api.example.com:8443"),
        ("api.example.com", "v2/api", None, "https://api.example.com/v2/api"),
        ("127.0.0.1", "http", 9000, "http://127.0.0.1:9000"),
        ("http://127.0.0.1:9000/api", None, 9000, "http://127.0.0.1:9000/api"),
        ("HTTPS://Api.Example.com/API", None, None, "https://Api.Example.com/API"),
    ],
)
def test_base_url_from_host_schema_and_port(
    host: str | None, schema: str | None, port: int | None, expected: str
) -> None:
    assert api.normalize_base_url(host, schema, "c", allow_insecure_http=False, port=port) == expected


# -- pagination --------------------------------------------------------------------------------


def _page(number: int, ids: list[str], *, has_more: bool = True, total_pages: int | None = None) -> api.Page:
    return api.Page([{"id": i} for i in ids], number, has_more, total_pages, None, "req_1")


def test_paging_stops_when_has_more_is_false_at_an_empty_page_or_at_total_pages() -> None:
    assert api.should_continue(_page(1, ["a"], has_more=False), set(), LIST) is False
    assert api.should_continue(_page(1, [], has_more=True), set(), LIST) is False
    assert api.should_continue(_page(3, ["a"], total_pages=3), set(), LIST) is False
    assert api.should_continue(_page(2, ["a"], total_pages=3), set(), LIST) is True


def test_paging_stops_with_an_error_when_a_page_repeats() -> None:
    seen: set[Any] = set()
    assert api.should_continue(_page(1, ["a", "b"]), seen, LIST) is True
    assert api.should_continue(_page(2, ["c", "d"]), seen, LIST) is True

    with pytest.raises(OctanistResponseError, match=r"returned the same page again for GET /leads \(page 3"):
        api.should_continue(_page(3, ["a", "b"]), seen, LIST)


def test_repeated_rows_without_ids_are_recognised_by_their_content() -> None:
    seen: set[Any] = set()
    rows = api.Page([{"date": "2026-03-01", "spend": 1.0}], 1, True, None, None, None)
    assert api.should_continue(rows, seen, LIST) is True

    with pytest.raises(OctanistResponseError, match="same page again"):
        api.should_continue(replace(rows, page=2), seen, LIST)


def test_paging_has_a_hard_page_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "MAX_PAGES", 3)
    seen: set[Any] = set()

    assert api.should_continue(_page(2, ["b"]), seen, LIST) is True
    with pytest.raises(OctanistResponseError, match="Stopped listing GET /leads after 3 pages"):
        api.should_continue(_page(3, ["c"]), seen, LIST)


def _answer(items: list[Any], page: int, has_more: bool) -> api.Answer:
    payload = {
        "success": True,
        "data": items,
        "meta": {
            "pagination": {"page": page, "hasMore": has_more, "totalPages": 9, "total": 99},
            "requestId": "r",
        },
    }
    return api.Answer(200, {}, json.dumps(payload).encode())


def test_paging_walks_pages_and_cuts_at_max_results() -> None:
    paging = api.Paging(api.leads_listing({"limit": "2"}), SETTINGS, max_results=3)

    first = paging.next_call()
    assert first == api.Call("GET", "/leads", {"limit": "2", "page": "1"})
    assert paging.read(first, _answer([{"id": "a"}, {"id": "b"}], 1, True)) == [{"id": "a"}, {"id": "b"}]
    second = paging.next_call()
    assert second is not None
    assert second.params == {"limit": "2", "page": "2"}
    assert paging.read(second, _answer([{"id": "c"}, {"id": "d"}], 2, True)) == [{"id": "c"}]
    assert paging.next_call() is None


def test_ad_spend_pages_go_in_the_body() -> None:
    listing = api.ad_spend_listing({"startDate": "2026-03-01", "endDate": "2026-03-02", "limit": 10})

    assert listing.call(2) == api.Call(
        "POST", "/ad-spend", body={"startDate": "2026-03-01", "endDate": "2026-03-02", "limit": 10, "page": 2}
    )


# -- Retry-After and backoff -------------------------------------------------------------------

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 1.5 ", 1.5),
        ("0", 0.0),
        ("-3", 0.0),
        ("Tue, 10 Mar 2026 12:00:30 GMT", 30.0),
        ("Tue, 10 Mar 2026 11:59:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        ("", None),
        ("inf", None),
        ("nan", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(value: str, expected: float | None) -> None:
    assert api.retry_after_seconds({"Retry-After": value}, now=NOW) == expected


def test_retry_after_missing_is_none() -> None:
    assert api.retry_after_seconds({}) is None


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 7, 8])
def test_backoff_doubles_with_jitter_and_is_capped(attempt: int) -> None:
    settings = replace(SETTINGS, backoff=0.5, max_retry_wait=20.0)
    ceiling = min(20.0, 0.5 * 2 ** (attempt - 1))

    waits = {api.retry_wait(attempt, settings) for _ in range(200)}

    assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
    assert len(waits) > 1, "the waits are jittered"


def test_backoff_never_undercuts_retry_after_and_caps_it() -> None:
    assert api.retry_wait(1, SETTINGS, retry_after=7) == 7
    assert api.retry_wait(1, SETTINGS, retry_after=10_000) == api.MAX_RETRY_WAIT
    assert 0.5 <= api.retry_wait(1, SETTINGS, retry_after=0) <= 1.0


@pytest.mark.parametrize(
    ("call", "status", "retried"),
    [
        (LIST, 429, True),
        (LIST, 500, True),
        (LIST, 503, True),
        (LIST, 501, False),
        (LIST, 400, False),
        (LIST, 401, False),
        (LIST, 403, False),
        (LIST, 404, False),
        (LIST, 409, False),
        (CREATE, 429, True),  # refused before any work
        (CREATE, 500, False),  # may have been processed
        (CREATE, 503, False),
    ],
)
def test_which_statuses_are_retried(call: api.Call, status: int, retried: bool) -> None:
    assert api.may_retry_status(call, status) is retried


def test_attempts_allow_max_retries_then_give_up() -> None:
    attempts = api.Attempts(LIST, replace(SETTINGS, max_retries=2), LOG)

    assert attempts.after_status(503, {}) is not None
    assert attempts.after_failure("reset", may_have_reached_server=True) is not None
    assert attempts.after_status(503, {}) is None
    assert attempts.retries == 2


def test_attempts_never_replay_a_create_that_may_have_reached_the_server() -> None:
    attempts = api.Attempts(CREATE, SETTINGS, LOG)

    assert attempts.after_failure("refused", may_have_reached_server=False) is not None
    assert attempts.after_failure("reset", may_have_reached_server=True) is None

    error = attempts.failure("reset", timeout=True, may_have_reached_server=True)
    assert isinstance(error, OctanistTimeoutError)
    assert error.may_have_reached_server is True
    assert error.message == "No answer from Octanist for POST /leads after 2 attempt(s): reset"


def test_attempts_log_each_retry(caplog: pytest.LogCaptureFixture) -> None:
    attempts = api.Attempts(LIST, SETTINGS, LOG)

    with caplog.at_level(logging.WARNING, logger="tests.api"):
        attempts.after_status(503, {"X-Request-Id": "req_9"})

    [record] = caplog.records
    assert re.fullmatch(
        r"Octanist GET /leads: HTTP 503 \(request req_9\); retry 1 of 3 in \d\.\d s\.", record.getMessage()
    )


def test_a_connection_failure_error_names_the_base_url() -> None:
    error = api.Attempts(LIST, SETTINGS, LOG).failure("refused", timeout=False, may_have_reached_server=False)

    assert type(error) is OctanistConnectionError
    assert "Check the connection's base URL (https://octanist.com/api)" in str(error)


# -- settings ----------------------------------------------------------------------------------


def test_settings_never_show_the_key() -> None:
    settings = replace(SETTINGS, api_key="sk-secret-value")

    assert "sk-secret-value" not in repr(settings)
    assert settings.headers() == {
        "X-API-KEY": "sk-secret-value",
        "Accept": "application/json",
        "User-Agent": f"airflow-provider-octanist/{__version__}",
    }
    assert settings.headers(with_body=True)["Content-Type"] == "application/json"


# -- keeping the key out -----------------------------------------------------------------------

SECRET = "oct_live_7f3a9c1e5b7f3a9c1e5b"


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"key {SECRET} and {SECRET}!", "key *** and ***!"),
        (f"cut inside it: '{SECRET[:14]}…'", "cut inside it: '***…'"),  # an excerpt's cut
        (f"{SECRET[:6]}", "***"),  # the shortest piece that is redacted
        (f"{SECRET[:5]} is too short to tell from text", f"{SECRET[:5]} is too short to tell from text"),
        (f"{SECRET[:8]}X{SECRET}", "***X***"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_scrub_replaces_the_key_and_any_cut_piece_of_its_start(text: str, scrubbed: str) -> None:
    assert api.scrub(text, SECRET) == scrubbed


def test_scrub_reaches_into_lists_and_dicts_and_leaves_other_values() -> None:
    value = {"a": [f"x{SECRET}", 3], SECRET: None}
    assert api.scrub(value, SECRET) == {"a": ["x***", 3], "***": None}
    assert api.scrub(f"a{SECRET}", "") == f"a{SECRET}"


# -- counting an answer's values before it is parsed ---------------------------------------------

STRINGS = ["", "a,b", "[{,,}]", 'a\\"b,[', "a\\\\", '\\\\\\"{', "\\u0022,"]
"""JSON string contents (as they stand between quotes) full of what would count outside a string."""


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "[]",
        "[1,2,3]",
        '{"a":1,"b":[true,null]}',
        "[{},{},[]]",
        *(f'["{inside}",1,2]' for inside in STRINGS),
        *(f'{{"{inside}":"{inside}"}}' for inside in STRINGS),
    ],
)
def test_too_many_values_counts_commas_and_openings_outside_strings(text: str) -> None:
    content = text.encode()
    counted = _structural_outside_strings(content) + 1
    assert counted >= _values(json.loads(content)), "the count bounds the values from above"
    for limit in range(1, counted + 3):
        assert json_values.too_many_values(content, limit) == (counted > limit), limit


def _values(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return 1 + sum(map(_values, children))


def _structural_outside_strings(content: bytes) -> int:
    """The oracle: a character-by-character walk of the JSON text."""
    count, in_string, escaped = 0, False, False
    for char in content.decode():
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        else:
            count += char in ",[{"
    return count


def test_too_many_values_refuses_past_the_limit_and_not_at_it() -> None:
    at_limit = json.dumps([0] * 99).encode()  # 100 values: the array and its items
    assert not json_values.too_many_values(at_limit, 100)
    assert json_values.too_many_values(json.dumps([0] * 100).encode(), 100)


def test_too_many_values_follows_strings_across_its_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_values, "_WINDOW", 8)
    # Strings longer than a window, and quotes and escapes on either side of every window's edge.
    for shift in range(8):
        items = ["," * shift, "," * 21, '[\\"{' * 5, *([0] * 30)]
        content = json.dumps(items, separators=(",", ":")).encode()
        counted = _structural_outside_strings(content) + 1
        assert counted == 34
        assert not json_values.too_many_values(content, counted)
        assert json_values.too_many_values(content, counted - 1)


def test_too_many_values_costs_nothing_for_an_answer_shorter_than_the_limit() -> None:
    assert not json_values.too_many_values(b"[" + b"{}," * 30 + b"{}]", 100)  # 31 values, 95 bytes
