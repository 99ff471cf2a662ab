"""Tests of ``_api`` (a package, so its conftest does not shadow the suite's root conftest)."""
