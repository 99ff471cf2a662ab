"""
Reading a connection's extras in a trigger without blocking the event loop, on every
common-compat provider release the package supports.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def async_extra_dejson(conn: Any) -> dict[str, Any]:
    """Read a connection's extras without blocking the event loop on the supervisor."""
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:
        # common-compat < 1.23 (the newest release for Python 3.10): the same thing by hand.
        if hasattr(conn, "aextra_dejson"):
            extras: dict[str, Any] = await conn.aextra_dejson()
            return extras
        return await asyncio.to_thread(lambda: dict(conn.extra_dejson))
    return dict(await get_async_extra_dejson(conn))
