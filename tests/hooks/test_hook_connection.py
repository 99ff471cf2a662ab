"""The Octanist connection: its forms (JSON, URI, UI round trip), base URL rules, extras and pooling."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

from airflow_provider_octanist import __version__
from airflow_provider_octanist.exceptions import OctanistAuthError
from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook, OctanistHook

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from airflow_provider_octanist import _api as api
    from airflow_provider_octanist.testing import FakeOctanistServer

    from .conftest import Twin

CONN_ENV = "AIRFLOW_CONN_OCTANIST_DEFAULT"


def _settings_of(monkeypatch: pytest.MonkeyPatch, value: str, **hook_kwargs: Any) -> api.Settings:
    """The settings the sync hook reads from ``AIRFLOW_CONN_OCTANIST_DEFAULT=value``."""
    monkeypatch.setenv(CONN_ENV, value)
    return OctanistHook(**hook_kwargs).settings


# -- the forms of a connection -----------------------------------------------------------------


def test_a_json_connection_with_only_the_key_uses_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_of(monkeypatch, '{"conn_type": "octanist", "password": "KEY"}')

    assert settings.base_url == "https://octanist.com/api"
    assert settings.api_key == "KEY"
    assert (settings.connect_timeout, settings.read_timeout) == (10.0, 30.0)
    assert (settings.max_retries, settings.backoff, settings.verify) == (3, 1.0, True)


@pytest.mark.parametrize(
    ("uri", "base_url"),
    [
        ("octanist://:KEY@", "https://octanist.com/api"),
        ("octanist://:KEY@octanist.com", "https://octanist.com/api"),
        ("octanist://:KEY@octanist.com/api", "https://octanist.com/api"),
        ("octanist://:KEY@api.example.com/v2/api", "https://api.example.com/v2/api"),
        ("octanist://:KEY@localhost:8443/api", "https://localhost:8443/api"),
        ("octanist://https://:KEY@api.example.com/api", "https://api.example.com/api"),
        (
            "octanist://https://:KEY@api.example.com/api?timeout=60&max_retries=5",
            "https://api.example.com/api",
        ),
        ("octanist://http://:KEY@127.0.0.1:8080/api", "http://127.0.0.1:8080/api"),
        ("octanist://:KEY@https%3A%2F%2Fapi.example.com%2Fapi", "https://api.example.com/api"),
        ("octanist://:KEY@http%3A%2F%2F%5B%3A%3A1%5D%3A8080%2Fapi", "http://[::1]:8080/api"),
    ],
)
def test_uri_connections_give_the_intended_base_url(
    monkeypatch: pytest.MonkeyPatch, uri: str, base_url: str
) -> None:
    settings = _settings_of(monkeypatch, uri)

    assert settings.base_url == base_url
    assert settings.api_key == "KEY"


def test_uri_query_parameters_are_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow 2 keeps query values as strings, Airflow 3 parses them as JSON: both must work.
    settings = _settings_of(
        monkeypatch, "octanist://:KEY@?timeout=5&connect_timeout=2.5&max_retries=1&retry_backoff=0.5"
    )

    assert (settings.read_timeout, settings.connect_timeout, settings.max_retries, settings.backoff) == (
        5.0,
        2.5,
        1,
        0.5,
    )


def test_an_api_key_with_reserved_characters_survives_the_uri_form(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "k/ey+with:odd@chars%"

    assert _settings_of(monkeypatch, f"octanist://:{quote(key, safe='')}@").api_key == key


def test_a_uri_connection_works_against_the_server(
    monkeypatch: pytest.MonkeyPatch, octanist_server: FakeOctanistServer
) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        f"octanist://http://:{octanist_server.api_key}@127.0.0.1:{octanist_server.port}/api?retry_backoff=0.01",
    )

    assert OctanistHook().test_connection()[0] is True


def test_a_connection_survives_the_uri_round_trip_of_the_test_button(
    monkeypatch: pytest.MonkeyPatch, octanist_server: FakeOctanistServer
) -> None:
    # The UI's Test button puts Connection.get_uri() into an AIRFLOW_CONN_ variable for the hook.
    from airflow.models.connection import Connection

    conn = Connection(
        conn_id="octanist_default",
        conn_type="octanist",
        host=octanist_server.url,
        password=octanist_server.api_key,
        extra=json.dumps({"timeout": 5, "retry_backoff": 0.01}),
    )
    monkeypatch.setenv(CONN_ENV, conn.get_uri())

    hook = OctanistHook()
    assert hook.test_connection()[0] is True
    assert hook.settings.base_url == octanist_server.url
    assert hook.settings.read_timeout == 5.0


def test_the_async_hook_reads_the_same_settings(connect: Callable[..., None]) -> None:
    connect(timeout=7, max_retries=2)

    async def read() -> api.Settings:
        return await OctanistAsyncHook().get_settings()

    assert asyncio.run(read()) == OctanistHook().settings


# -- base URL rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["http://api.example.com/api", "http://10.0.0.5:8080/api", "api.example.com:80", "http://octanist.com"],
)
def test_plain_http_to_a_non_loopback_host_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str, octanist_server: FakeOctanistServer
) -> None:
    schema = "http" if "://" not in host else None
    value = json.dumps({"conn_type": "octanist", "host": host, "schema": schema, "password": "KEY"})

    with pytest.raises(ValueError, match="refusing to send the API key over plain http://") as caught:
        _settings_of(monkeypatch, value)

    assert "allow_insecure_http" in str(caught.value)
    with pytest.raises(ValueError, match="refusing"):
        OctanistHook().get_lead("lead_1")
    assert octanist_server.request_count() == 0


@pytest.mark.parametrize("flag", [True, "true", "True", "1", "yes"])
def test_plain_http_is_allowed_when_the_connection_says_so(
    monkeypatch: pytest.MonkeyPatch, flag: Any
) -> None:
    value = json.dumps(
        {
            "conn_type": "octanist",
            "host": "http://test.internal/api",
            "password": "KEY",
            "extra": {"allow_insecure_http": flag},
        }
    )

    assert _settings_of(monkeypatch, value).base_url == "http://test.internal/api"


@pytest.mark.parametrize(
    "host", ["http://localhost:9000/api", "http://127.0.0.2/api", "http://[::1]:9000/api"]
)
def test_plain_http_to_loopback_is_allowed(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    value = json.dumps({"conn_type": "octanist", "host": host, "password": "KEY"})

    assert _settings_of(monkeypatch, value).base_url == host


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"host": "ftp://octanist.com/api"}, "is not an http(s) URL"),
        ({"host": "https://"}, "is not an http(s) URL"),
        ({"host": "https://octanist.com:port/api"}, "is not an http(s) URL"),
        ({"host": "https://user:pw@octanist.com/api"}, "without credentials, query or fragment"),
        ({"host": "https://octanist.com/api?key=1"}, "without credentials, query or fragment"),
        (
            {"host": "https://octanist.com:443/api", "port": 8443},
            "the host says port 443 but the port field says 8443",
        ),
        ({"host": "https://octanist.com/api", "schema": "v2"}, "the base path is given twice"),
    ],
)
def test_a_bad_host_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], words: str
) -> None:
    value = json.dumps({"conn_type": "octanist", "password": "KEY", **fields})

    with pytest.raises(ValueError, match=_literal(words)):
        _settings_of(monkeypatch, value)


def test_trailing_slashes_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    value = json.dumps({"conn_type": "octanist", "host": "https://api.example.com/api///", "password": "KEY"})

    assert _settings_of(monkeypatch, value).base_url == "https://api.example.com/api"


@pytest.mark.parametrize("password", [None, "", "   "])
def test_a_connection_without_a_key_is_an_auth_error(
    monkeypatch: pytest.MonkeyPatch, password: str | None
) -> None:
    value = json.dumps({"conn_type": "octanist", "password": password})

    with pytest.raises(OctanistAuthError, match="has no API key") as caught:
        _settings_of(monkeypatch, value)

    assert "Settings > General > API Keys" in str(caught.value)


# -- extras ------------------------------------------------------------------------------------


def test_extras_set_timeouts_retries_and_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"timeout": "12.5", "connect_timeout": 3, "max_retries": "5", "retry_backoff": 0.2}
    settings = _settings_of(
        monkeypatch, json.dumps({"conn_type": "octanist", "password": "K", "extra": extra})
    )

    assert (settings.read_timeout, settings.connect_timeout, settings.max_retries, settings.backoff) == (
        12.5,
        3.0,
        5,
        0.2,
    )


def test_the_size_cap_extra_is_read_and_defaults_to_64_mib(monkeypatch: pytest.MonkeyPatch) -> None:
    def cap_of(extra: dict[str, Any]) -> int:
        value = json.dumps({"conn_type": "octanist", "password": "K", "extra": extra})
        return _settings_of(monkeypatch, value).max_response_bytes

    assert cap_of({}) == 64 * 1024 * 1024
    assert cap_of({"max_response_bytes": "1048576"}) == 1024 * 1024


def test_prefixed_extras_of_older_forms_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"extra__octanist__timeout": 9, "extra__octanist__max_retries": 0, "timeout": ""}
    settings = _settings_of(
        monkeypatch, json.dumps({"conn_type": "octanist", "password": "K", "extra": extra})
    )

    assert (settings.read_timeout, settings.max_retries) == (9.0, 0)


def test_hook_arguments_override_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"timeout": 12, "connect_timeout": 3, "max_retries": 5}
    value = json.dumps({"conn_type": "octanist", "password": "K", "extra": extra})

    settings = _settings_of(monkeypatch, value, timeout=1.5, connect_timeout=0.5, max_retries=0)

    assert (settings.read_timeout, settings.connect_timeout, settings.max_retries) == (1.5, 0.5, 0)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"timeout": 0}, "timeout must be a number of seconds above 0 and at most 3600, got 0"),
        ({"timeout": -1}, "timeout must be a number of seconds above 0"),
        ({"timeout": "soon"}, "timeout must be a number, got 'soon'"),
        ({"timeout": True}, "timeout must be a number"),
        ({"connect_timeout": "inf"}, "connect_timeout must be a number of seconds above 0"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_retries": -1}, "max_retries must be a whole number of retries from 0 and at most 100"),
        ({"retry_backoff": 0}, "retry_backoff must be a number of seconds above 0 and at most 60"),
        ({"max_response_bytes": "lots"}, "max_response_bytes must be a number, got 'lots'"),
        ({"verify": "/no/such/ca.pem"}, "verify must be true, false or the path of a CA bundle"),
    ],
)
def test_bad_extras_are_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], words: str
) -> None:
    value = json.dumps({"conn_type": "octanist", "password": "K", "extra": extra})

    with pytest.raises(ValueError, match=_literal(f"Connection 'octanist_default': {words}")):
        _settings_of(monkeypatch, value)


@pytest.mark.parametrize(
    ("flag", "verify"), [(False, False), ("false", False), ("no", False), ("true", True)]
)
def test_verify_can_be_turned_off(monkeypatch: pytest.MonkeyPatch, flag: Any, verify: bool) -> None:
    value = json.dumps({"conn_type": "octanist", "password": "K", "extra": {"verify": flag}})

    assert _settings_of(monkeypatch, value).verify is verify


def test_verify_takes_a_ca_bundle_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    value = json.dumps({"conn_type": "octanist", "password": "K", "extra": {"verify": str(bundle)}})

    assert _settings_of(monkeypatch, value).verify == str(bundle)


def test_an_empty_connection_id_is_refused() -> None:
    with pytest.raises(ValueError, match="octanist_conn_id must be a connection id"):
        OctanistHook(" ")
    with pytest.raises(ValueError, match="octanist_conn_id must be a connection id"):
        OctanistAsyncHook("")


def test_a_named_connection_is_used(
    monkeypatch: pytest.MonkeyPatch, octanist_server: FakeOctanistServer
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OCTANIST_SALES", octanist_server.connection_json)

    assert OctanistHook("octanist_sales").test_connection()[0] is True
    assert asyncio.run(OctanistAsyncHook(octanist_conn_id="octanist_sales").test_connection())[0] is True


# -- what goes over the wire -------------------------------------------------------------------


def test_the_key_travels_only_in_the_api_key_header(hook: Twin, octanist_server: FakeOctanistServer) -> None:
    octanist_server.add_lead(id="lead_1")
    hook.get_lead("lead_1")
    hook.get_stats()

    get, post = octanist_server.requests
    for request in (get, post):
        assert request.headers["X-API-KEY"] == "***"  # sent (the server redacts what it records)
        assert "authorization" not in request.headers
        assert octanist_server.api_key not in request.raw_path + json.dumps(request.query)
        assert request.headers["Accept"] == "application/json"
        assert request.headers["User-Agent"] == f"airflow-provider-octanist/{__version__}"
    assert "content-type" not in get.headers
    assert post.headers["Content-Type"] == "application/json"
    assert octanist_server.api_key.encode() not in post.raw_body


def test_fifty_sync_calls_reuse_one_tcp_connection(
    sync_hook: OctanistHook, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()

    for _ in range(50):
        sync_hook.get_lead(lead["id"])

    assert octanist_server.request_count() == 50
    assert octanist_server.connections_opened == 1
    assert {r.connection_id for r in octanist_server.requests} == {1}


def test_threads_sharing_a_sync_hook_keep_to_its_pool_size(
    connect: Callable[..., None], octanist_server: FakeOctanistServer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    lead = octanist_server.add_lead()
    octanist_server.latency = 0.02  # the calls overlap, so the pool is really shared
    with OctanistHook(pool_size=16) as hook, ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: hook.get_lead(lead["id"]), range(160)))

    assert octanist_server.request_count() == 160
    assert 1 < octanist_server.connections_opened <= 16


def test_a_pool_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="pool_size must be at least 1, got 0"):
        OctanistHook(pool_size=0)


def test_fifty_async_calls_reuse_one_tcp_connection(
    connect: Callable[..., None], octanist_server: FakeOctanistServer, async_transport: str
) -> None:
    lead = octanist_server.add_lead()

    async def fifty() -> None:
        async with OctanistAsyncHook() as hook:
            for _ in range(50):
                await hook.get_lead(lead["id"])

    asyncio.run(fifty())

    assert octanist_server.request_count() == 50
    assert octanist_server.connections_opened == 1


def test_a_retry_after_a_dropped_connection_opens_a_new_one(
    hook: Twin, octanist_server: FakeOctanistServer
) -> None:
    lead = octanist_server.add_lead()
    hook.get_lead(lead["id"])
    octanist_server.inject("drop")

    hook.get_lead(lead["id"])

    assert octanist_server.connections_opened == 2


def _literal(text: str) -> str:
    return re.escape(text)
