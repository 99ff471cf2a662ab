"""
pytest fixtures that run a ``FakeOctanistServer`` for one test.

Enable them in a test module or the root ``conftest.py``::

    pytest_plugins = ["airflow_provider_octanist.testing.pytest_plugin"]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_octanist.testing.server import FakeOctanistServer

if TYPE_CHECKING:
    from collections.abc import Iterator

CONNECTION_ENV_VAR = "AIRFLOW_CONN_OCTANIST_DEFAULT"


@pytest.fixture
def octanist_server() -> Iterator[FakeOctanistServer]:
    """A started ``FakeOctanistServer`` on an ephemeral loopback port, stopped after the test."""
    with FakeOctanistServer() as server:
        yield server


@pytest.fixture
def octanist_connection(
    octanist_server: FakeOctanistServer, monkeypatch: pytest.MonkeyPatch
) -> FakeOctanistServer:
    """
    The ``octanist_server``, with ``AIRFLOW_CONN_OCTANIST_DEFAULT`` pointing at it for the test.

    :param octanist_server: the running fake server.
    :param monkeypatch: restores the environment after the test.
    """
    monkeypatch.setenv(CONNECTION_ENV_VAR, octanist_server.connection_json)
    return octanist_server
