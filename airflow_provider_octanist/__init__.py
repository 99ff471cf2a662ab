"""Apache Airflow provider for Octanist, the lead-tracking and conversion service."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

__all__ = ["DEFAULT_CONN_ID", "__version__", "get_provider_info"]

DEFAULT_CONN_ID = "octanist_default"
"""The connection id every hook, operator, sensor and trigger uses unless told otherwise."""
# Defined here, not in _api, so that DAG files importing the operators do not pay for _api's import.

_PACKAGE = "airflow_provider_octanist"
_INTEGRATION = "Octanist"
_ASSET_URIS = {
    "schemes": ["octanist"],
    "handler": f"{_PACKAGE}.lineage.sanitize_uri",
    "to_openlineage_converter": f"{_PACKAGE}.lineage.convert_asset_to_openlineage",
}


def get_provider_info() -> dict[str, Any]:
    """
    Describe this provider to Airflow's providers manager.

    Airflow calls this through the ``apache_airflow_provider`` entry point. The connection form is
    declared here (``conn-fields`` and ``ui-field-behaviour``) so that Airflow 3.2+ draws it without
    importing the hook; older Airflow reads the same form from the hook's classic methods.
    """
    return {
        "package-name": "airflow-provider-octanist",
        "name": "Octanist",
        "description": "`Octanist <https://octanist.com/>`__ lead tracking and conversions.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://octanist.com/docs/api",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PACKAGE}.hooks.octanist"]}],
        "operators": [
            {"integration-name": _INTEGRATION, "python-modules": [f"{_PACKAGE}.operators.octanist"]}
        ],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PACKAGE}.sensors.octanist"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PACKAGE}.triggers.octanist"]}],
        "transfers": [
            {
                "source-integration-name": _INTEGRATION,
                "target-integration-name": "Common IO",
                "python-module": f"{_PACKAGE}.transfers.object_storage",
            },
            {
                "source-integration-name": "Common IO",
                "target-integration-name": _INTEGRATION,
                "python-module": f"{_PACKAGE}.transfers.object_storage",
            },
            {
                "source-integration-name": "Common SQL",
                "target-integration-name": _INTEGRATION,
                "python-module": f"{_PACKAGE}.transfers.sql",
            },
        ],
        # The octanist:// asset scheme: Asset("octanist://octanist.com/leads") is normalized and
        # reaches OpenLineage as the dataset the operators report. "dataset-uris" is Airflow 2.11's name.
        "asset-uris": [dict(_ASSET_URIS)],
        "dataset-uris": [dict(_ASSET_URIS)],
        # MessageQueueTrigger(scheme="octanist", ...), with apache-airflow-providers-common-messaging
        # installed; without it, Airflow skips the entry as an optional feature.
        "queues": [f"{_PACKAGE}.queues.octanist.OctanistMessageQueueProvider"],
        "connection-types": [
            {
                "connection-type": "octanist",
                "hook-class-name": f"{_PACKAGE}.hooks.octanist.OctanistHook",
                "hook-name": "Octanist",
                "conn-fields": _conn_fields(),
                "ui-field-behaviour": CONNECTION_FORM_BEHAVIOUR_DECLARATIVE,
            }
        ],
    }


# The connection form, declared once. ``hooks.octanist`` derives the classic (pre-3.2) form from
# these same values, so both forms always agree.
CONNECTION_FORM_EXTRAS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Read timeout (seconds)",
        "type": "number",
        "default": 30,
        "description": "Seconds to wait for Octanist to answer a request.",
    },
    "connect_timeout": {
        "label": "Connect timeout (seconds)",
        "type": "number",
        "default": 10,
        "description": "Seconds to wait for a TCP/TLS connection to Octanist.",
    },
    "max_retries": {
        "label": "Max retries",
        "type": "integer",
        "default": 3,
        "description": "Retries for 429, 5xx, connection errors and timeouts (never for 4xx).",
    },
    "retry_backoff": {
        "label": "Retry backoff (seconds)",
        "type": "number",
        "default": 1,
        "description": "Wait before the first retry; doubled for each further one, with jitter.",
    },
    "max_response_bytes": {
        "label": "Max answer size (bytes)",
        "type": "integer",
        "default": 64 * 1024 * 1024,
        "description": "An answer larger than this once decoded is refused while it arrives.",
    },
    "verify": {
        "label": "Verify TLS",
        "type": "string",
        "default": "true",
        "description": "true, false, or the path of a CA bundle present on workers and triggerers.",
    },
    "allow_insecure_http": {
        "label": "Allow plain http:// to a non-loopback host",
        "type": "boolean",
        "default": False,
        "description": "Only for test servers: the API key would travel unencrypted.",
    },
}

CONNECTION_FORM_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["login", "schema", "port"],
    "relabeling": {"password": "API Key", "host": "Base URL"},
    "placeholders": {
        "host": "https://octanist.com/api",
        "password": "Octanist API key (Settings > General > API Keys)",
        "extra": '{"timeout": 30, "connect_timeout": 10, "max_retries": 3}',
    },
}

CONNECTION_FORM_BEHAVIOUR_DECLARATIVE: dict[str, Any] = {
    key.replace("_", "-"): value for key, value in CONNECTION_FORM_BEHAVIOUR.items()
}


def _conn_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, spec in CONNECTION_FORM_EXTRAS.items():
        fields[name] = {
            "label": spec["label"],
            "description": spec["description"],
            "schema": {"type": [spec["type"], "null"], "default": spec["default"]},
        }
    return fields
