"""Tests of the triggers and their feeds (a package: its conftest does not shadow the root one)."""
