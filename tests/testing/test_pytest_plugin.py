"""
The pytest fixtures that run a fake server per test (``pytest_plugin``).

Over real loopback HTTP with stdlib clients only; shared helpers in ``helpers.py``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from .helpers import KEY, subprocess_env

if TYPE_CHECKING:
    import pytest

    from airflow_provider_octanist.testing import FakeOctanistServer

pytest_plugins = ["pytester"]


def test_octanist_connection_fixture_points_the_default_connection_at_the_server(
    octanist_connection: FakeOctanistServer,
) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_OCTANIST_DEFAULT"])
    assert connection == {"conn_type": "octanist", "host": octanist_connection.url, "password": KEY}


def test_pytest_plugin_gives_each_test_a_fresh_server_and_stops_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", subprocess_env()["PYTHONPATH"])
    pytester.makepyfile(
        """
        import urllib.request

        pytest_plugins = ["airflow_provider_octanist.testing.pytest_plugin"]
        seen = []

        def test_first(octanist_server):
            octanist_server.add_lead(id="lead_1")
            request = urllib.request.Request(
                octanist_server.url + "/check", method="POST", headers={"X-API-KEY": octanist_server.api_key}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                assert response.status == 200
            seen.append(octanist_server)

        def test_second(octanist_server):
            (previous,) = seen
            assert not previous.is_running
            assert octanist_server is not previous
            assert octanist_server.leads == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
