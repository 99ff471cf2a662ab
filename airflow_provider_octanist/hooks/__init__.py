"""Hooks of the Octanist provider."""
