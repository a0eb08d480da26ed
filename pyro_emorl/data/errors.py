"""Exceptions raised for bad data input.

Both derive from `ValueError`, so callers that only care about "bad input" can catch that.
"""

from __future__ import annotations


class DataFormatError(ValueError):
    """A file or array does not have the layout this package reads or writes."""


class RecordError(DataFormatError):
    """A TFRecord file is truncated or corrupt, or one of its records cannot be decoded."""
