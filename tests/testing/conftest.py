"""
Fixtures of the fake server's tests: ``server``, the ``octanist_server`` of the pytest plugin.

Helpers that are not fixtures live in ``helpers.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


@pytest.fixture
def server(octanist_server: FakeOctanistServer) -> FakeOctanistServer:
    return octanist_server
