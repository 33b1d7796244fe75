"""The package version (one place; the top level and the CLI read it)."""

__version__ = "0.1.0"
