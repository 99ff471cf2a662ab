"""
Test doubles for Octanist: ``FakeOctanistServer``, a real HTTP server on loopback that speaks the API.

Stdlib only, so it is cheap to import: use it in the provider's tests, in demos and benchmarks, and
to test your own DAGs offline. pytest users can enable the ``octanist_server`` fixture with
``pytest_plugins = ["airflow_provider_octanist.testing.pytest_plugin"]``.

The fake restates the API (fields, statuses, filters, envelope) instead of importing the client's
code on purpose: it is an independent oracle, so keep it separate rather than deduplicate it.
"""

from __future__ import annotations

from airflow_provider_octanist.testing.server import FAULT_KINDS, FakeOctanistServer, Fault, RecordedRequest

__all__ = ["FAULT_KINDS", "FakeOctanistServer", "Fault", "RecordedRequest"]
