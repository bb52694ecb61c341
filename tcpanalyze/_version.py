"""The package version (one place, imported by the package, the reports and the CLI)."""

__version__ = "0.1.0"
