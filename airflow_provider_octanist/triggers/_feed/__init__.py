"""
The lead change feed: what changed after a watermark, read through the async hook, for every
trigger that follows lead changes (the lead event trigger's watchers in ``triggers._watch``, and
the feed the lead-status triggers of one event loop share, in ``triggers._status``).

``changes`` (``fetch_changes``: the sans-I/O keyset walk of ``_keyset``, with its cursor, driven
through the hook, checking order, the server's clock, lead
shapes and repeated pages; see docs/hostile-answers.md), ``server_clock`` (which server times to
believe), ``lead_source`` (the hook of a poll loop), ``retry_policy`` (what a failure costs) and
``health`` (each loop's metrics and its ERROR when blind).

Nothing here imports an HTTP client or the hook at module level (DAG files import the trigger
module, and with it this package, on every parse).
"""
