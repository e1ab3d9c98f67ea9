"""One base exception per layer; cli.py turns them into one-line messages and exit codes."""

from __future__ import annotations


class CachewhyError(Exception):
    """An error the user can act on: printed as one line, no traceback."""

    exit_code = 2


class UsageError(CachewhyError):
    """Wrong arguments to cachewhy itself."""


class EngineError(CachewhyError):
    """Docker, buildx or the builder cannot be reached or is too old."""

    exit_code = 3


class InputError(CachewhyError):
    """A log, metadata file, record or Dockerfile cachewhy was given is unusable."""
