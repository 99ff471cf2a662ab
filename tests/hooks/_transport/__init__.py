"""Tests of the async hook's transport package, ``hooks/_transport/``."""
