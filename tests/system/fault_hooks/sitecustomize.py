"""
A fault for the end-to-end tests, in every process of the test deployment (this folder is on its
``PYTHONPATH``), never in the provider: while the file named by ``OCTANIST_E2E_HOLD_SAVES`` exists,
the lead watcher of connection ``OCTANIST_E2E_HOLD_CONN`` waits before it stores its position, and
says so by creating that file's ``.held`` twin. A test SIGKILLs the triggerer meanwhile: Airflow has
stored the poll's event, the watcher has not stored the position after it, and the triggerer that
adopts the watcher reports the same changes again.
"""

from __future__ import annotations

import os

_HOLD = os.environ.get("OCTANIST_E2E_HOLD_SAVES")

if _HOLD:
    import asyncio
    from pathlib import Path
    from typing import Any

    from airflow_provider_octanist.triggers._watch import state_slot

    _CONN = os.environ.get("OCTANIST_E2E_HOLD_CONN", "")
    _save = state_slot.StateSlot.save

    async def _held_save(self: Any, value: dict[str, Any]) -> None:
        # A file the test removes is the one signal that crosses into the killed triggerer's process.
        hold = Path(_HOLD)
        if f"/{_CONN}/" in self.key and hold.exists():  # noqa: ASYNC240
            hold.with_name(hold.name + ".held").touch()
            while hold.exists():  # noqa: ASYNC110, ASYNC240
                await asyncio.sleep(0.1)
        await _save(self, value)

    state_slot.StateSlot.save = _held_save  # type: ignore[method-assign]
