"""Exceptions raised for bad data input.

Both derive from `ValueError`, so callers that only care about "bad input" can catch that.
"""

from __future__ import annotations


class DataFormatError(ValueError):
    """A file or array does not have the layout this package reads or writes."""


class RecordError(DataFormatError):
    """A TFRecord file is truncated or corrupt, or one of its records cannot be decoded."""


class MissingArrayError(DataFormatError):
    """A split lacks the ground truth that was asked for (``masks`` or ``factors``).

    Attributes:
        path: the file.
        split: the split.
        key: ``"masks"`` or ``"factors"``.
    """

    def __init__(self, path: str, split: str, key: str, present: list[str]) -> None:
        super().__init__(
            f"{path}:{split} has no ground-truth {key} (it has {present}); open it with "
            f"{key}=False to read without them"
        )
        self.path = path
        self.split = split
        self.key = key
