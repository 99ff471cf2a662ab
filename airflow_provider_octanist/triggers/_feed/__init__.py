"""
The lead change feed: what changed after a watermark, read through the async hook, the lead
event trigger's watchers built on it (their state, the stand-alone loop and the shared poll), and
the feed the lead-status triggers of one event loop share (``status_feed``, every Airflow version).

The engine any trigger can reuse: ``cursor`` (the watermark), ``changes`` (``fetch_changes``:
keyset paging over ``GET /leads``, checking order, the server's clock, lead shapes and repeated
pages; see docs/hostile-answers.md) and ``lead_source`` (the hook plus its error policy). The lead
event trigger's watchers: ``watch_state`` (cursor plus memory), ``state_slot`` (where the state is
kept on Airflow 3.3+), ``watch`` (starting a watcher, its events, the stand-alone loop),
``shared_poll_support`` (the version gate) and ``shared_poll`` (one poll for several watchers,
Airflow 3.3.2+ only).

Nothing here imports an HTTP client or the hook at module level (DAG files import the trigger
module, and with it this package, on every parse); ``shared_poll`` needs Airflow 3.3 and is
imported only where ``shared_poll_support`` allows it.
"""
