"""
What importing each public module loads of the provider: the guard of DAG-parse cost.

A DAG file pays, on every parse loop, for every module its imports load. The operators, the sensor
and the triggers load only what defining a task needs (argument checks, the status names); the
request machinery, the change feed and the storage code are imported when a task or a trigger
runs. Each list below is exact, so a new import shows up here as a decision, not by accident.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import HAS_COMMON_MESSAGING

P = "airflow_provider_octanist"

# What both kinds of transfer share: the operators' base, the formats, the storage and the write-back.
_TRANSFERS = {
    "_checks",
    "_lead_vocabulary",
    "_timestamps",
    "operators",
    "operators.octanist",
    "statuses",
    "transfers",
    "transfers._formats",
    "transfers._readers",
    "transfers._storage",
    "transfers._write_back",
}

LOADS: dict[str, set[str]] = {
    # What a DAG file imports to define tasks and watchers.
    f"{P}.operators.octanist": {"_checks", "_lead_vocabulary", "operators", "operators.octanist", "statuses"},
    f"{P}.sensors.octanist": {"_checks", "sensors", "sensors.octanist", "statuses"},
    f"{P}.triggers.octanist": {
        "_checks",
        "_timestamps",
        "statuses",
        "triggers",
        "triggers._watch",
        "triggers._watch.shared_poll_support",
        "triggers.octanist",
    },
    f"{P}.transfers.object_storage": _TRANSFERS | {"lineage", "transfers.object_storage"},
    f"{P}.transfers.sql": _TRANSFERS | {"transfers.sql"},
    f"{P}.events": {"_timestamps", "events"},
    f"{P}.sweep": {"sweep"},
    f"{P}.lineage": {"lineage"},
    f"{P}.statuses": {"statuses"},
    f"{P}.exceptions": {"exceptions"},
    f"{P}.types": {"types"},
    # Imported where a task or a trigger runs: the request machinery comes with the hook.
    f"{P}.hooks.octanist": {
        "_api",
        "_api.bodies",
        "_api.calls",
        "_api.errors",
        "_api.json_values",
        "_api.lead_filters",
        "_api.paging",
        "_api.responses",
        "_api.retries",
        "_api.settings",
        "_backoff",
        "_checks",
        "_deadline",
        "_lead_bodies",
        "_lead_vocabulary",
        "_redact",
        "_timestamps",
        "exceptions",
        "hooks",
        "hooks._base",
        "hooks._transport",
        "hooks._transport.share",
        "hooks.octanist",
        "lineage",
        "statuses",
    },
}

_PROBE = """
import importlib, json, sys
try:
    import airflow.sdk  # what every Airflow 3 DAG file loads first
except ImportError:
    import airflow.models  # Airflow 2
import airflow_provider_octanist
P = "airflow_provider_octanist."
loaded = {}
for name in json.loads(sys.argv[1]):
    for own in [m for m in sys.modules if m.startswith(P)]:
        del sys.modules[own]
    importlib.import_module(name)
    loaded[name] = sorted(m[len(P):] for m in sys.modules if m.startswith(P))
print(json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    """Each public module imported alone (the provider's modules cleared in between), in one interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(LOADS))],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("module", list(LOADS))
def test_a_public_module_loads_exactly_the_provider_modules_it_needs(
    loaded: dict[str, list[str]], module: str
) -> None:
    got = set(loaded[module])
    assert got == LOADS[module], (
        f"importing {module} now also loads {sorted(got - LOADS[module]) or 'nothing more'} and no longer "
        f"loads {sorted(LOADS[module] - got) or 'nothing less'}: import what only runs in execute() or "
        "run() inside the function, or, if a DAG file really needs it, add it to LOADS."
    )


@pytest.mark.skipif(
    not HAS_COMMON_MESSAGING,
    reason="MessageQueueTrigger comes with apache-airflow-providers-common-messaging.",
)
def test_a_dag_file_importing_message_queue_trigger_loads_only_the_queue_module() -> None:
    # common-messaging imports every registered queue module with MessageQueueTrigger itself.
    probe = _PROBE.replace("import airflow_provider_octanist\n", "")
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(["airflow.providers.common.messaging.triggers.msg_queue"])],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(loaded["airflow.providers.common.messaging.triggers.msg_queue"]) == {
        "queues",
        "queues.octanist",
    }
