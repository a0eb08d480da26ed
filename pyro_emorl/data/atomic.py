"""Atomic file writing: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block finishes without error.

    The temporary file lives in the target's directory so that :func:`os.replace` is an atomic
    rename on the same file system: readers see either the old file or the complete new one, never
    a partial write. On any exception (including ``KeyboardInterrupt``) the temporary file is
    removed and the target is left untouched.

    Args:
        path: Final location of the file. Missing parent directories are created.

    Yields:
        The temporary path to write to. It exists (empty) when the block starts.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
