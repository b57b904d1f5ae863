"""Exceptions of the history package; each message says what to do."""

from __future__ import annotations


class HistoryError(Exception):
    """Base class of every history import or load failure."""


class SchemaNotRecognisedError(HistoryError, ValueError):
    """A file's header matches none of the known minute-bar layouts."""


class HistoryNotFoundError(HistoryError, LookupError):
    """No imported history for the requested source (or no history folder at all)."""
