"""Atomic file writing: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def check_output(
    path: str | os.PathLike[str],
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    overwrite: bool = False,
    option: str = "--out",
) -> Path:
    """Refuse an output path before any work: an input of the same command, a directory, or
    (unless ``overwrite``) an existing file.

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: if ``path`` is one of ``inputs`` or a directory.
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    for source in inputs:
        if Path(source).exists() and path.exists() and path.resolve() == Path(source).resolve():
            raise ValueError(f"{option} {path} is also an input of this command: write elsewhere")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory: give a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{option} {path} exists: pass --overwrite to replace it, or choose another file"
        )
    return path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block finishes without error.

    The temporary file lives in the target's directory so that `os.replace` is an atomic
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
