"""
The lead event trigger's watchers, built on the change feed (``triggers._feed``): each one's state,
where it is kept, how it starts, and the two poll loops that turn changes into trigger events.

``watch_state`` (cursor plus memory), ``state_slot`` (where the state is kept on Airflow 3.3+),
``start`` (what a watcher is, and starting or resuming it), ``watcher`` (the ``Watcher``: changes in,
trigger events out), ``watch`` (the stand-alone loop), ``shared_poll_support`` (the version gate)
and ``shared_poll`` (one poll for several watchers, Airflow 3.3.2+ only).

Nothing here imports an HTTP client or the hook at module level; ``shared_poll`` needs Airflow 3.3
and is imported only where ``shared_poll_support`` allows it.
"""
