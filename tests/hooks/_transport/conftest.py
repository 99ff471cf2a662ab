"""Fixtures of the transport tests: an open lead on the fake server the default connection points at."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_octanist.testing import FakeOctanistServer


@pytest.fixture
def lead(octanist_server: FakeOctanistServer, connect: Callable[..., None]) -> str:
    """An open lead on the fake server, which ``octanist_default`` points at."""
    return str(octanist_server.add_lead(name="Ada")["id"])
