"""
An async hook's share of the client of its connection in its event loop (``shared_client.py``):
taken on first use, moved along when the loop changes, given back by ``aclose()``.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_octanist._api import Settings
    from airflow_provider_octanist.hooks._transport.shared_client import ClientKey, SharedClient


class _ClientShare:
    """
    What the async hook inherits to hold a share of a shared client; imports httpx only when used.

    The hook supplies ``get_settings``, and its public ``get_client``/``aclose`` use these.
    """

    _shared: SharedClient | None = None
    _shared_key: ClientKey | None = None

    async def get_settings(self) -> Settings:
        """The connection's settings (the hook's own)."""
        raise NotImplementedError

    async def _shared_client(self) -> SharedClient:
        from airflow_provider_octanist.hooks._transport import shared_client as shared_clients

        loop = asyncio.get_running_loop()
        if self._shared is not None and self._shared_key is not None:
            if self._shared_key.loop is loop and not self._shared.client.is_closed:
                return self._shared
            # Another event loop's client cannot serve this one, and a closed client serves nobody.
            shared_clients.REGISTRY.release(self._shared_key, self._shared)
            self._shared = self._shared_key = None
        settings = await self.get_settings()
        if self._shared is None:  # a concurrent call on this hook may have got one meanwhile
            key = shared_clients.ClientKey.of(loop, settings)
            self._shared = shared_clients.REGISTRY.acquire(key, partial(shared_clients.new_client, settings))
            self._shared_key = key
        return self._shared

    async def _release_client(self) -> None:
        """Give up this hook's share of the client; the last hook to let go closes it."""
        if self._shared is not None and self._shared_key is not None:
            from airflow_provider_octanist.hooks._transport.shared_client import REGISTRY

            shared, key = self._shared, self._shared_key
            self._shared = self._shared_key = None
            # A client can only be closed in its own event loop (a closed loop took its sockets along).
            if REGISTRY.release(key, shared) and key.loop is asyncio.get_running_loop():
                await shared.client.aclose()
