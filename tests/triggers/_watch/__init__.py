"""Tests of the lead event trigger's watchers (``triggers/_watch/``)."""
