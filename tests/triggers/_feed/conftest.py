"""Fixtures of the change-feed tests: answered pages of ``GET /leads``, built without a server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_octanist.testing import FakeOctanistServer


@pytest.fixture
def server(octanist_server: FakeOctanistServer, octanist_conn: str) -> FakeOctanistServer:
    """The fake API, with ``octanist_default`` pointing at it (fast hook retries)."""
    return octanist_server
