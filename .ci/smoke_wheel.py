"""Smoke-test the installed wheel: every module imports, Airflow lists the provider, a connection tests OK.

Run with the interpreter of a clean venv that holds the wheel and Airflow (``make package`` does),
with that venv's ``bin`` first on ``PATH``. It works in a temporary directory with a throw-away
``AIRFLOW_HOME``, so neither the source tree nor a developer's Airflow can stand in for the wheel.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

DISTRIBUTION = "airflow-provider-octanist"
PACKAGE = "airflow_provider_octanist"


def _airflow(*args: str, env: dict[str, str]) -> str:
    """Run ``airflow ARGS`` and return its stdout; exit with its output if it fails.

    :param args: the command line after ``airflow``.
    :param env: the environment of the command.
    """
    command = [sys.executable, "-m", "airflow", *args]  # the venv's own Airflow, whatever PATH says
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        sys.exit(
            f"`airflow {' '.join(args)}` failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def _json_rows(output: str) -> list[dict[str, str]]:
    """Parse the JSON table that ``airflow ... -o json`` prints, skipping any log lines around it.

    :param output: the command's stdout.
    """
    decoder = json.JSONDecoder()
    for line in output.splitlines():
        if line.startswith("[{") or line.strip() == "[]":
            rows, _ = decoder.raw_decode(output[output.index(line) :])
            if isinstance(rows, list):
                return rows
    sys.exit(f"no JSON table in the output:\n{output}")


def main() -> int:
    """Run the smoke checks; return 0 when they all pass."""
    home = Path(tempfile.mkdtemp(prefix="octanist-wheel-smoke-"))
    os.chdir(home)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    }
    os.environ.update(env)

    package = importlib.import_module(PACKAGE)
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    location = Path(package.__file__ or "").resolve().parent
    if site_packages not in location.parents:
        sys.exit(f"{PACKAGE} was imported from {location}, not from the installed wheel in {site_packages}")
    # Modules of optional dependencies: the pytest plugin needs pytest, which users of the plugin have
    # and the provider does not need; the aiohttp transport is imported only where aiohttp is installed,
    # the message queue provider only with common-messaging (Airflow skips it without).
    needs = {
        f"{PACKAGE}.testing.pytest_plugin": "pytest",
        f"{PACKAGE}.hooks._transport.aiohttp_transport": "aiohttp",
        f"{PACKAGE}.queues.octanist": "airflow.providers.common.messaging",
    }
    optional = {module for module, needed in needs.items() if importlib.util.find_spec(needed) is None}
    modules = [
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}.")
        if not info.name.endswith("__main__") and info.name not in optional
    ]
    for name in modules:
        importlib.import_module(name)
    print(f"smoke: imported {len(modules) + 1} modules of {PACKAGE} {package.__version__} from {location}")

    providers = _json_rows(_airflow("providers", "list", "-o", "json", env=env))
    ours = [row for row in providers if row.get("package_name") == DISTRIBUTION]
    if not ours or ours[0].get("version") != package.__version__:
        sys.exit(f"`airflow providers list` does not show {DISTRIBUTION} {package.__version__}: {providers}")
    print(f"smoke: `airflow providers list` shows {DISTRIBUTION} {ours[0]['version']}")

    hooks = _json_rows(_airflow("providers", "hooks", "-o", "json", env=env))
    if not any(row.get("connection_type") == "octanist" for row in hooks):
        sys.exit("`airflow providers hooks` does not list the 'octanist' connection type")
    print("smoke: `airflow providers hooks` lists the 'octanist' connection type")

    from airflow_provider_octanist.testing import FakeOctanistServer

    with FakeOctanistServer() as server:
        conn = {"conn_type": "octanist", "host": server.url, "password": server.api_key}
        env["AIRFLOW_CONN_OCTANIST_DEFAULT"] = json.dumps(conn)
        output = _airflow("connections", "test", "octanist_default", env=env)
        if "Connection success" not in output:
            sys.exit(f"`airflow connections test` did not succeed:\n{output}")
        if server.request_count("POST", "/api/check") != 1:
            sys.exit("`airflow connections test` did not call POST /check exactly once")
    print("smoke: `airflow connections test octanist_default` succeeds against FakeOctanistServer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
