"""Tests of the change feed (``triggers/_feed/``), one module per module with behaviour of its own."""
