"""Operators of the Octanist provider."""
