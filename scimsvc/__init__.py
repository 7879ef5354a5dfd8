"""scimsvc: a multi-tenant SCIM 2.0 service provider for seats, licenses and teams."""

import importlib.metadata

try:
    __version__ = importlib.metadata.version("scimsvc")  # pyproject.toml's, as installed
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "unknown"
