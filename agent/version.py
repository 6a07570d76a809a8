"""The installed package's version, one place (CLI --version, MCP serverInfo, results.json)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("interestlens")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+source"
