"""
A connection's settings: timeouts, retries and caps read from its extras (hook arguments first),
the base URL from host, schema and port, and the headers every request carries, never the key shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from _api.conftest import SETTINGS
from airflow_provider_octanist import __version__
from airflow_provider_octanist import _api as api

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


class _Connection(NamedTuple):
    """The fields of an Airflow connection that settings are read from."""

    conn_id: str = "octanist_default"
    host: str | None = None
    schema: str | None = None
    port: int | None = None
    password: str | None = " K "


@pytest.mark.parametrize(
    ("extras", "overrides", "expected"),
    [
        ({}, {}, {"read_timeout": 30.0, "connect_timeout": 10.0, "max_retries": 3, "backoff": 1.0}),
        ({}, {}, {"verify": True, "max_response_bytes": 64 * 1024 * 1024, "total_timeout": 40.0}),
        ({"timeout": "5", "connect_timeout": 2.5}, {}, {"read_timeout": 5.0, "connect_timeout": 2.5}),
        ({"max_retries": "1", "retry_backoff": "0.5"}, {}, {"max_retries": 1, "backoff": 0.5}),
        (
            {"timeout": 5, "max_retries": 1},
            {"timeout": 1.5, "max_retries": 0},
            {"read_timeout": 1.5, "max_retries": 0},
        ),
        ({"verify": False}, {}, {"verify": False}),
        ({"max_response_bytes": 1024}, {}, {"max_response_bytes": 1024}),
        ({}, {}, {"api_key": "K", "base_url": api.DEFAULT_BASE_URL, "conn_id": "octanist_default"}),
    ],
)
def test_settings_are_read_from_the_extras_with_hook_arguments_first(
    extras: dict[str, Any], overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    settings = api.settings_from_connection(_Connection(), extras, **overrides)

    assert {name: getattr(settings, name) for name in expected} == expected
