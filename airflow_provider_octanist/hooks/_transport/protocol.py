"""
What the shared client sends through (:class:`Transport`) and what a sent call gives back
(:data:`Exchange`): the bottom of the transport package, which both transports and the client build on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from airflow_provider_octanist._api import Call, Settings

    Exchange = tuple[int, Mapping[str, str], bytes]
    """An answer as the async hook takes it: status code, headers, body (decoded, within the cap)."""


class Transport(Protocol):
    """What the shared client sends through: an httpx transport that also exchanges a whole call."""

    async def exchange(self, client: httpx.AsyncClient, call: Call, settings: Settings) -> Exchange:
        """Send ``call`` as ``client`` would; return the answer, its body read within the size cap."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send an httpx request (``get_client()``'s)."""

    async def aclose(self) -> None:
        """Close the connections."""
