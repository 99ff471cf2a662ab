"""Example_dags of the Octanist provider."""
