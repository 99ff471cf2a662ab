"""Tests of the Octanist hooks (a package, so its conftest does not shadow the suite's root conftest)."""
