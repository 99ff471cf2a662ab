"""
Size cap and value bound: the peak memory growth of a hook fed a huge answer, with and without them.

The fake server (in a process of its own) answers ``POST /stats`` once with a JSON body of 400 MiB
sent gzip-compressed (about 400 KiB on the wire: a gzip bomb), and once with a plain body of
100 MiB, as issue 17 measured them. Each call runs in a fresh process, sync hook and async hook
alike: the figure is that process's peak RSS (``VmHWM``) above its RSS just before the call,
everything imported and the connection read. With the default ``max_response_bytes`` (64 MiB)
the call is refused at the cap; the peer is the same call with the cap at its largest allowed
value (1 GiB), which reads the whole answer as the hooks did before there was a cap.

Then a body under the cap that decodes into millions of objects: 32 MiB of ``{},`` (32 KiB of
gzip, 11 million empty objects). With the bound on JSON values it is refused unparsed; the peer
is the same call with the bound switched off, which parses it as the hooks did before.

``python bench/size_cap.py [--smoke] [--json PATH]``
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from _common import (
    BENCH_DIR,
    OCTANIST_CONN,
    Row,
    ServerProcess,
    bench_main,
    connection_uri_json,
    peak_rss_bytes,
    rss_bytes,
    run_json,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

MIB = 1024 * 1024
DEFAULT_CAP = 64 * MIB
LARGEST_CAP = 1024 * MIB
FULL = {"bomb": 400 * MIB, "plain": 100 * MIB}
SMOKE = {"bomb": 8 * MIB, "plain": 4 * MIB}
VALUES = {"full": 32 * MIB, "smoke": 4 * MIB}
"""Decoded bytes of ``{},`` of the value-bound rows (a value every three bytes)."""
GOAL_MIB = (DEFAULT_CAP + 32 * MIB) / MIB
"""Bounded by the cap: the pieces read before it was passed, plus a little for their bookkeeping."""


def _outcome(error: Exception) -> str:
    if "bytes once decoded" in str(error):
        return "refused at the cap"
    if "JSON values" in str(error):
        return "refused unparsed"
    return "parsed, then refused"  # the bound switched off: a data list where stats are an object


def one_call(hook_kind: str, url: str, cap: int, bound: str = "on") -> int:
    """
    Call ``get_stats`` once through the ``sync`` or ``async`` hook; print the growth and outcome.

    ``bound``: ``off`` switches the bound on JSON values off (the peer of the value-bound rows).
    """
    os.environ[f"AIRFLOW_CONN_{OCTANIST_CONN.upper()}"] = connection_uri_json(
        url, max_response_bytes=cap, max_retries=0
    )
    import asyncio

    from airflow_provider_octanist._api import responses
    from airflow_provider_octanist.exceptions import OctanistResponseError
    from airflow_provider_octanist.hooks.octanist import OctanistAsyncHook, OctanistHook

    if bound == "off":

        def never(content: bytes, limit: int = 0) -> bool:
            return False

        responses.too_many_values = never
    outcome = "read whole"

    if hook_kind == "sync":
        hook = OctanistHook(OCTANIST_CONN)
        _ = hook.settings
        before = rss_bytes()
        try:
            hook.get_stats()
        except OctanistResponseError as exc:
            outcome = _outcome(exc)
        hook.close()
    else:

        async def call() -> int:
            nonlocal outcome
            async with OctanistAsyncHook(OCTANIST_CONN) as hook:
                await hook.get_client()
                start = rss_bytes()
                try:
                    await hook.get_stats()
                except OctanistResponseError as exc:
                    outcome = _outcome(exc)
                return start

        before = asyncio.run(call())
    print(json.dumps({"growth": peak_rss_bytes() - before, "outcome": outcome}))
    return 0


def _call(
    server: ServerProcess, hook_kind: str, body: str, size: int, cap: int, bound: str = "on"
) -> dict[str, Any]:
    options = {"decoded_bytes": size, "gzip": body != "plain", "values": body == "values"}
    server.command("inject", "huge", options)
    result: dict[str, Any] = run_json(
        [str(BENCH_DIR / "size_cap.py"), "--call", hook_kind, server.url, str(cap), bound], timeout=600
    )
    return result


def measure(smoke: bool) -> list[Row]:
    """One row per hook and body: the growth with the default cap, the peer without a cap."""
    sizes = SMOKE if smoke else FULL
    rows: list[Row] = []
    with ServerProcess() as server:
        for body, size in sizes.items():
            what = (
                f"a {size // MIB} MiB gzip bomb (~{size // MIB} KiB on the wire)"
                if body == "bomb"
                else f"a plain {size // MIB} MiB body"
            )
            for hook_kind in ("sync", "async"):
                capped = _call(server, hook_kind, body, size, DEFAULT_CAP)
                uncapped = _call(server, hook_kind, body, size, LARGEST_CAP)
                rows.append(
                    _growth_row(
                        f"Size cap: peak memory growth on {what}, {hook_kind} hook",
                        capped,
                        uncapped,
                        "cap at 1 GiB (as before the cap)",
                        f"default cap of 64 MiB: {capped['outcome']}; with the cap at 1 GiB: "
                        f"{uncapped['outcome']}",
                    )
                )
        rows += _value_rows(server, VALUES["smoke" if smoke else "full"])
    return rows


def _value_rows(server: ServerProcess, size: int) -> list[Row]:
    """One row per hook: the growth on ``size`` bytes of ``{},`` with the bound on JSON values and without."""
    rows = []
    for hook_kind in ("sync", "async"):
        bounded = _call(server, hook_kind, "values", size, DEFAULT_CAP)
        unbounded = _call(server, hook_kind, "values", size, DEFAULT_CAP, bound="off")
        rows.append(
            _growth_row(
                f"Value bound: peak memory growth on {size // MIB} MiB of '{{}},' "
                f"({size / 3e6:.1f} million objects, ~{size // MIB} KiB gzip), {hook_kind} hook",
                bounded,
                unbounded,
                "without the bound (as before it)",
                f"with the bound: {bounded['outcome']}; without it: {unbounded['outcome']}",
            )
        )
    return rows


def _growth_row(figure: str, bounded: dict[str, Any], peer: dict[str, Any], peer_name: str, note: str) -> Row:
    """A row of one call's growth (goal: at most the cap and 32 MiB) beside its peer's."""
    value = bounded["growth"] / MIB
    return Row(
        figure=figure,
        value=value,
        unit="MiB",
        goal=f"<= {GOAL_MIB:g} MiB",
        met=value <= GOAL_MIB,
        peer=peer["growth"] / MIB,
        peer_name=peer_name,
        runs=1,
        note=note,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the rows (``--json PATH`` also writes them); or be one call."""
    children = {"--call": lambda args: one_call(args[0], args[1], int(args[2]), *args[3:])}
    return bench_main(__doc__ or "", measure, argv, children)


if __name__ == "__main__":
    sys.exit(main())
