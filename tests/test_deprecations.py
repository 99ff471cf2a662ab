"""The provider loads through Airflow's own machinery without a single deprecation warning about it.

A fresh interpreter imports every provider module and asks Airflow's ProvidersManager for the
provider, its hooks and the connection form, recording every warning on the way. Warnings raised
from the provider's code, or by Airflow about the provider (such as the 3.2+ warning for hooks that
still draw their form with ``get_connection_form_widgets``), fail the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import airflow_provider_octanist

DISTRIBUTION = "airflow-provider-octanist"
PACKAGE_DIR = Path(airflow_provider_octanist.__file__).resolve().parent
FORM_EXTRAS = {
    "timeout",
    "connect_timeout",
    "max_retries",
    "retry_backoff",
    "max_response_bytes",
    "verify",
    "allow_insecure_http",
}
DEPRECATIONS = {"DeprecationWarning", "PendingDeprecationWarning", "FutureWarning"}
_MARK = "OCTANIST-PROBE-RESULT:"

# Runs in a fresh interpreter so that import-time warnings are seen whatever the tests before did.
_PROBE = r"""
import importlib, importlib.util, json, pkgutil, sys, types, warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from airflow import __version__ as airflow_version

    try:
        import wtforms  # noqa: F401

        has_wtforms = True
    except ImportError:
        has_wtforms = False
    if not has_wtforms and tuple(int(p) for p in airflow_version.split(".")[:2]) >= (3, 2):
        # Airflow 3.2+ warns about hooks that still draw their form with get_connection_form_widgets()
        # only where wtforms imports (installs with the FAB provider): a stand-in lets it check ours.
        stub = types.ModuleType("wtforms")
        for field in ("BooleanField", "IntegerField", "PasswordField", "StringField"):
            setattr(stub, field, type(field, (), {}))
        sys.modules["wtforms"] = stub

    import airflow_provider_octanist as package

    modules = sorted(
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + ".")
        if not info.name.endswith("__main__")
    )
    # The shared poll subclasses Airflow 3.3's shared-stream producer; like the trigger, import it only
    # where its version gate lets it in.
    from airflow_provider_octanist.triggers._watch.shared_poll_support import ack_streams_supported

    gated = set() if ack_streams_supported() else {"airflow_provider_octanist.triggers._watch.shared_poll"}
    # The aiohttp transport is imported only where aiohttp is installed (the aiohttp extra).
    if importlib.util.find_spec("aiohttp") is None:
        gated.add("airflow_provider_octanist.hooks._transport.aiohttp_transport")
    # The message queue provider subclasses common-messaging's; Airflow imports it only with it.
    if importlib.util.find_spec("airflow.providers.common.messaging") is None:
        gated.add("airflow_provider_octanist.queues.octanist")
    for name in modules:
        if name not in gated:
            importlib.import_module(name)

    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    provider = manager.providers.get("airflow-provider-octanist")
    try:  # Airflow 3.3+ serves hooks from the Task SDK's manager (ProvidersManager.hooks is deprecated)
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:
        hooks = manager.hooks
    hook = hooks.get("octanist")
    widgets = sorted(
        key.split("__", 2)[2]
        for key in manager.connection_form_widgets
        if key.startswith("extra__octanist__")
    )
    behaviour = manager.field_behaviours.get("octanist")

result = {
    "airflow_version": airflow_version,
    "modules": modules,
    "provider_version": provider.version if provider else None,
    "hook": None if hook is None else {
        "class": hook.hook_class_name,
        "name": hook.hook_name,
        "conn_id_attr": hook.connection_id_attribute_name,
    },
    "widgets": widgets,
    "behaviour": behaviour,
    "has_wtforms": has_wtforms,
    "warnings": [
        {
            "category": w.category.__name__,
            "mro": [c.__name__ for c in w.category.__mro__],
            "message": str(w.message),
            "filename": w.filename,
            "lineno": w.lineno,
        }
        for w in caught
    ],
}
print(MARK + json.dumps(result, default=str))
"""


def _version_tuple(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a fresh interpreter saw while loading the provider through Airflow (run once)."""
    cwd = tmp_path_factory.mktemp("probe")  # away from the repository, as an installed provider is
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.replace("MARK", repr(_MARK))],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=cwd,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith(_MARK)]
    assert result.returncode == 0, f"probe failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    assert lines, f"probe printed no result:\n{result.stdout}\n{result.stderr}"
    data: dict[str, Any] = json.loads(lines[-1][len(_MARK) :])
    return data


def _about_us(warning: dict[str, Any]) -> bool:
    in_package = Path(warning["filename"]).resolve().is_relative_to(PACKAGE_DIR)
    message = warning["message"]
    return in_package or any(
        name in message for name in ("airflow_provider_octanist", DISTRIBUTION, "Octanist")
    )


def _format(warnings_: list[dict[str, Any]]) -> str:
    return "\n".join(f"{w['category']} at {w['filename']}:{w['lineno']}: {w['message']}" for w in warnings_)


def test_no_deprecation_warning_from_or_about_the_provider(probe: dict[str, Any]) -> None:
    ours = [w for w in probe["warnings"] if _about_us(w) and DEPRECATIONS & set(w["mro"])]
    assert not ours, f"deprecation warnings on Airflow {probe['airflow_version']}:\n{_format(ours)}"


def test_every_provider_module_was_imported(probe: dict[str, Any]) -> None:
    for role in ("hooks", "operators", "sensors", "triggers"):
        assert f"airflow_provider_octanist.{role}.octanist" in probe["modules"]
    assert "airflow_provider_octanist.exceptions" in probe["modules"]


def test_providers_manager_finds_the_provider_through_its_entry_point(probe: dict[str, Any]) -> None:
    (entry_point,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.module == "airflow_provider_octanist"
    ]
    assert entry_point.name == "provider_info"
    assert entry_point.value == "airflow_provider_octanist:get_provider_info"
    assert probe["provider_version"] == airflow_provider_octanist.__version__


def test_providers_manager_registers_the_octanist_hook(probe: dict[str, Any]) -> None:
    assert probe["hook"] == {
        "class": "airflow_provider_octanist.hooks.octanist.OctanistHook",
        "name": "Octanist",
        "conn_id_attr": "octanist_conn_id",
    }


def test_connection_form_has_the_octanist_fields(probe: dict[str, Any]) -> None:
    declarative = _version_tuple(probe["airflow_version"]) >= (3, 2)
    if not declarative and not probe["has_wtforms"]:
        pytest.skip(
            f"Airflow {probe['airflow_version']} builds connection forms from wtforms fields, and wtforms "
            "(the FAB provider) is not installed here; 3.2+ reads the declarative form instead"
        )
    assert set(probe["widgets"]) == FORM_EXTRAS
    behaviour = probe["behaviour"]
    assert behaviour is not None, "Airflow has no field behaviour for the 'octanist' connection type"
    assert set(behaviour["hidden_fields"]) == {"login", "schema", "port"}
    assert behaviour["relabeling"] == {"password": "API Key", "host": "Base URL"}
    assert behaviour["placeholders"]["host"] == "https://octanist.com/api"


def test_pytest_turns_deprecation_warnings_from_provider_modules_into_errors() -> None:
    # The filterwarnings setting in pyproject.toml matches warnings attributed to provider modules.
    code = compile("import warnings\nwarnings.warn('old API', DeprecationWarning)\n", "<provider>", "exec")
    with pytest.raises(DeprecationWarning, match="old API"):
        exec(code, {"__name__": "airflow_provider_octanist.some_module"})
