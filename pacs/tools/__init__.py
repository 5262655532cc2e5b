"""Command-line tools shipped with Vesalius (console scripts declared in pyproject.toml)."""
