"""The ``ingestflow`` command line (Typer + Rich)."""
