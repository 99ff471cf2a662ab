"""Tests of the status trigger's wait and its shared feed (``triggers/_status``)."""
