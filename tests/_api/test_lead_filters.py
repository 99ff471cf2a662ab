"""
The query of ``GET /leads``: filter names, operators, sort spellings, fields and page sizes,
checked and turned into the API's parameters with no I/O.
"""

from __future__ import annotations

from datetime import date, datetime

import pytest

from airflow_provider_octanist import _api as api

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
