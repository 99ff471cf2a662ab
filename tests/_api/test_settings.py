"""
A connection's settings: the base URL read from host, schema and port, and the headers
every request carries without ever showing the key.
"""

from __future__ import annotations

from dataclasses import replace

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
