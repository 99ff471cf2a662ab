"""The package as Airflow sees it: provider info, entry point, and the real ``airflow`` CLI."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

import airflow
import jsonschema
import pytest

import airflow_provider_octanist
from airflow_provider_octanist import get_provider_info

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer

AIRFLOW_VERSION = tuple(int(part) for part in airflow.__version__.split(".")[:2])
CLI_TIMEOUT = 180  # seconds; one `airflow` command takes 3-5 s here


def test_provider_info_validates_against_airflows_schema() -> None:
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())

    jsonschema.validate(get_provider_info(), schema)


def test_provider_info_names_modules_and_classes_that_exist() -> None:
    info = get_provider_info()

    for role in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[role]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    [conn_type] = info["connection-types"]
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    hook_class = getattr(importlib.import_module(module), name)
    assert conn_type["connection-type"] == hook_class.conn_type == "octanist"
    assert conn_type["hook-name"] == hook_class.hook_name
    assert hook_class.default_conn_name == "octanist_default"


def test_provider_info_version_is_the_distribution_version() -> None:
    assert get_provider_info()["versions"][0] == airflow_provider_octanist.__version__
    assert distribution("airflow-provider-octanist").version == airflow_provider_octanist.__version__


def test_the_entry_point_loads_get_provider_info() -> None:
    [entry_point] = [
        ep
        for ep in entry_points(group="apache_airflow_provider")
        if ep.name == "provider_info" and ep.value.startswith("airflow_provider_octanist:")
    ]

    assert entry_point.load() is get_provider_info


def test_the_declarative_form_matches_the_classic_one() -> None:
    # Airflow 3.2+ draws the form from conn-fields/ui-field-behaviour; older Airflow from the hook.
    from airflow_provider_octanist.hooks.octanist import OctanistHook

    [conn_type] = get_provider_info()["connection-types"]
    classic = OctanistHook.get_ui_field_behaviour()
    declarative = conn_type["ui-field-behaviour"]

    assert declarative == {
        "hidden-fields": classic["hidden_fields"],
        "relabeling": classic["relabeling"],
        "placeholders": classic["placeholders"],
    }
    assert set(conn_type["conn-fields"]) == {
        "timeout",
        "connect_timeout",
        "max_retries",
        "retry_backoff",
        "max_response_bytes",
        "verify",
        "allow_insecure_http",
    }


# -- the airflow CLI, as a separate process ------------------------------------------------------


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the ``airflow`` command of this interpreter's environment; fail clearly if it hangs."""
    bin_dir = str(Path(sys.executable).parent)
    full_env = {**os.environ, **env, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    full_env["COLUMNS"] = "250"  # rich wraps long messages at the terminal width otherwise
    # The suite's unit-test mode makes Airflow print a notice on stdout; a user's CLI has none.
    full_env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    try:
        return subprocess.run(
            [str(Path(bin_dir) / "airflow"), *args],
            capture_output=True,
            text=True,
            env=full_env,
            timeout=CLI_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`airflow {' '.join(args)}` did not finish within {CLI_TIMEOUT} s: {exc.stdout!r}")


def _connection_env(server: FakeOctanistServer, key: str) -> dict[str, str]:
    conn = {"conn_type": "octanist", "host": server.url, "password": key, "extra": {"retry_backoff": 0.01}}
    return {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_OCTANIST_DEFAULT": json.dumps(conn),
    }


@pytest.mark.airflow
def test_airflow_providers_list_shows_the_package() -> None:
    result = _airflow("providers", "list", "--output", "json", env={})

    assert result.returncode == 0, result.stderr
    # Airflow 3.0 logs plugin set-up to stdout before the table: read the table's own line.
    table = next(line for line in result.stdout.splitlines() if line.startswith("[{"))
    providers: list[dict[str, Any]] = json.loads(table)
    ours = [p for p in providers if p["package_name"] == "airflow-provider-octanist"]
    assert ours == [
        {
            "package_name": "airflow-provider-octanist",
            "description": ours[0]["description"],
            "version": airflow_provider_octanist.__version__,
        }
    ]
    assert "Octanist" in ours[0]["description"]


@pytest.mark.airflow
def test_airflow_connections_test_succeeds_with_the_right_key(octanist_server: FakeOctanistServer) -> None:
    result = _airflow(
        "connections",
        "test",
        "octanist_default",
        env=_connection_env(octanist_server, octanist_server.api_key),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    assert octanist_server.request_count("POST", "/api/check") == 1


@pytest.mark.airflow
def test_airflow_connections_test_fails_clearly_with_a_wrong_key(octanist_server: FakeOctanistServer) -> None:
    result = _airflow(
        "connections", "test", "octanist_default", env=_connection_env(octanist_server, "wrong-key-42")
    )

    assert "Connection failed!" in result.stdout
    assert (
        "Octanist rejected the API key of connection 'octanist_default': Invalid or missing API key"
        in result.stdout
    )
    assert "Check the connection's password" in result.stdout
    assert "wrong-key-42" not in result.stdout + result.stderr
    # The CLI prints the failure but exits 0 up to Airflow 3.0 (checked on 2.11 and 3.0); 3.3 exits 1.
    assert result.returncode == (1 if AIRFLOW_VERSION >= (3, 3) else 0)
    assert octanist_server.request_count("POST", "/api/check") == 1
