"""Atomic file writing: write to a temporary file beside the target, then rename over it.

A process killed mid-write (SIGKILL, a power cut) leaves its temporary file behind, named
``.<target name>.<8 random characters>.tmp``; `remove_temporaries` removes such leftovers (a
training run does so in its directory when it starts or resumes). Nothing mistakes them for the
target: checkpoints are found by the exact name ``step-NNNNNNNN.pt``.
"""

from __future__ import annotations

import os
import re
import sys
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


_TMP_SUFFIX = ".tmp"


def temporaries(directory: str | os.PathLike[str], names: str = r".+") -> list[Path]:
    """The temporary files `atomic_path` left in ``directory`` for targets whose name matches
    the regular expression ``names`` (all of them by default), sorted; ``[]`` if none."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    # mkstemp's random part: 8 characters of [a-z0-9_].
    pattern = re.compile(rf"^\.(?:{names})\.[a-z0-9_]{{8}}{re.escape(_TMP_SUFFIX)}$")
    return sorted(p for p in directory.iterdir() if pattern.match(p.name) and p.is_file())


def remove_temporaries(directory: str | os.PathLike[str], names: str = r".+") -> list[Path]:
    """Delete what `temporaries` finds (the leftovers of writes that were killed); returns the
    deleted paths. Call it only when no other process is writing the same targets."""
    found = temporaries(directory, names)
    for path in found:
        path.unlink(missing_ok=True)
    return found


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries that killed writes of ``path`` left beside it (a command about to
    write ``path`` calls it); returns the deleted paths."""
    path = Path(path)
    return remove_temporaries(path.parent, re.escape(path.name))


def report_removed(command: str, removed: Sequence[Path]) -> None:
    """One warning line on stderr for `remove_stale_temporaries`'s result, if it removed any."""
    if removed:
        names = ", ".join(str(p) for p in removed)
        print(
            f"emorl {command}: warning: removed {len(removed)} temporary file(s) left by an "
            f"interrupted write: {names}",
            file=sys.stderr,
        )


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block finishes without error.

    The temporary file lives in the target's directory so that `os.replace` is an atomic
    rename on the same file system: readers see either the old file or the complete new one, never
    a partial write. Before the rename the file's data are fsync-ed and its permissions set as
    the umask says (``mkstemp`` makes it owner-only), and after it the directory is fsync-ed, so
    the new file survives a power cut too. On any exception (including ``KeyboardInterrupt``) the
    temporary file is removed and the target is left untouched.

    Args:
        path: Final location of the file. Missing parent directories are created.

    Yields:
        The temporary path to write to. It exists (empty) when the block starts.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=_TMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _make_durable(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _make_durable(path: Path) -> None:
    """Flush ``path``'s data to disk and give it the permissions a new file would have."""
    umask = os.umask(0)  # reading the umask means setting it; restored at once
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory: Path) -> None:
    # Persists the rename itself; not possible (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
