"""Triggers of the Octanist provider."""
