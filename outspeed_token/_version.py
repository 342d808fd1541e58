"""The package's one version (pyproject.toml reads it; the plugin reports it; CHANGELOG.md records it)."""
__version__ = "0.1.0"
