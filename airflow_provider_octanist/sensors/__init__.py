"""Sensors of the Octanist provider."""
