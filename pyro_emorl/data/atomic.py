"""Atomic file writing: write to a temporary file beside the target, then rename over it.

The temporary file is named ``.<target name>.pid<owner's process id>.<8 random characters>.tmp``.
A process killed mid-write (SIGKILL, a power cut) leaves it behind; `remove_temporaries` removes
such leftovers, but only those whose owner is dead (or that carry no owner, as older versions
named them), so a write still under way is never mistaken for an interrupted one. Nothing
mistakes them for the target: checkpoints are found by the exact name ``step-NNNNNNNN.pt``.

Commands that write one output file (``emorl generate``, ``emorl convert``) also hold
`output_lock`, an exclusive lock on ``.<target name>.lock`` beside it, for the whole write: a
second command aimed at the same file is refused at once instead of racing the first.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from pyro_emorl.data.interrupts import check_interrupted


class OutputBusyError(OSError):
    """Another process holds the lock of the output file (it is writing that file now)."""


def check_output(
    path: str | os.PathLike[str],
    *,
    inputs: Sequence[str | os.PathLike[str]] = (),
    overwrite: bool = False,
    option: str = "--out",
) -> Path:
    """Refuse an output path before any work: an input of the same command, a directory, a path
    under a file, or (unless ``overwrite``) an existing file.

    Returns:
        ``path`` as a `Path`.

    Raises:
        ValueError: if ``path`` is one of ``inputs`` or a directory.
        NotADirectoryError: if ``path`` lies under a file.
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
    """
    text = os.fspath(path)
    path = Path(path)
    for source in inputs:
        if Path(source).exists() and path.exists() and path.resolve() == Path(source).resolve():
            raise ValueError(f"{option} {path} is also an input of this command: write elsewhere")
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise ValueError(f"{option} {text} is a directory: give a file name")
    check_parent(path, option)
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{option} {path} exists: pass --overwrite to replace it, or choose another file"
        )
    return path


def check_parent(path: str | os.PathLike[str], option: str = "output") -> None:
    """Raise `NotADirectoryError` with a one-line message if a folder on the way to ``path``
    is a file (``mkdir`` would fail later with a bare ``[Errno 17] File exists``)."""
    path = Path(path)
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{option} {path}: {parent} is a file, not a folder; choose a path in a folder"
                )
            return


# ``.<target>.pid<digits>.<mkstemp's 8 characters of [a-z0-9_]>.tmp``; the ``pid`` part is
# optional so that leftovers of versions that did not record their owner are found too.
_TMP_SUFFIX = ".tmp"
_RANDOM = r"[a-z0-9_]{8}"


def _pattern(names: str) -> re.Pattern[str]:
    return re.compile(rf"^\.(?:{names})\.(?:pid(?P<pid>\d+)\.)?{_RANDOM}{re.escape(_TMP_SUFFIX)}$")


def temporaries(directory: str | os.PathLike[str], names: str = r".+") -> list[Path]:
    """The temporary files `atomic_path` left in ``directory`` for targets whose name matches
    the regular expression ``names`` (all of them by default), sorted; ``[]`` if none. Writes
    still under way are listed too (see `remove_temporaries`)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = _pattern(names)
    return sorted(p for p in directory.iterdir() if pattern.match(p.name) and p.is_file())


def owner_alive(temporary: str | os.PathLike[str]) -> bool:
    """Whether the process named in a temporary file's name still runs (``False`` for a name
    without an owner). This process counts as alive: its own temporaries are in use.

    Process ids are per machine: a temporary written by another machine on a shared file
    system reads as alive or dead by chance, which `output_lock` makes harmless for the data
    commands (the lock holder is the only writer of its target).
    """
    match = re.search(rf"\.pid(\d+)\.{_RANDOM}{re.escape(_TMP_SUFFIX)}$", Path(temporary).name)
    if match is None:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OverflowError:  # not a possible process id
        return False
    return True


def remove_temporaries(directory: str | os.PathLike[str], names: str = r".+") -> list[Path]:
    """Delete the temporaries `temporaries` finds whose owner is dead (the leftovers of writes
    that were killed; see `owner_alive`); returns the deleted paths. A temporary of a process
    that still runs is left alone: that write may finish."""
    found = [path for path in temporaries(directory, names) if not owner_alive(path)]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries that killed writes of ``path`` left beside it (a command about to
    write ``path`` calls it while holding `output_lock`); returns the deleted paths."""
    path = Path(path)
    return remove_temporaries(path.parent, re.escape(path.name))


class LeftoversRemovedWarning(UserWarning):
    """Temporary files of killed writes of an output were removed before writing it anew."""


def removed_message(removed: Sequence[Path]) -> str:
    """What `report_removed` and `warn_removed` say about removed temporaries."""
    names = ", ".join(str(p) for p in removed)
    return f"removed {len(removed)} temporary file(s) left by an interrupted write: {names}"


def warn_removed(removed: Sequence[Path]) -> None:
    """A `LeftoversRemovedWarning` for `remove_stale_temporaries`'s result, if it removed any
    (the library's way; the ``emorl`` commands show it as one warning line)."""
    if removed:
        warnings.warn(removed_message(removed), LeftoversRemovedWarning, stacklevel=3)


def report_removed(command: str, removed: Sequence[Path]) -> None:
    """One warning line on stderr for `remove_stale_temporaries`'s result, if it removed any."""
    if removed:
        print(f"emorl {command}: warning: {removed_message(removed)}", file=sys.stderr)


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file of an output: ``.<name>.lock`` beside it."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


# Locks this process holds, by lock file and thread: `output_lock` is re-entrant within one
# thread (`default_dataset` holds the lock while `generate` takes it again), whereas two
# separate opens of one file would block each other even inside one process.
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


@contextmanager
def output_lock(
    path: str | os.PathLike[str], *, wait: bool = False, option: str = "--out"
) -> Iterator[None]:
    """Hold the exclusive lock of the output ``path`` while the block runs.

    The lock is an ``fcntl.flock`` on `lock_path` (created, holding the owner's process id for
    the message of a refused command, and removed on release). The kernel releases it when its
    owner dies, however it dies, so a killed command never blocks the next one. On systems
    without ``fcntl`` (Windows) the block runs unlocked.

    Args:
        path: The output file.
        wait: Wait for the lock instead of failing at once.
        option: How the error message names the output.

    Raises:
        OutputBusyError: If another process holds the lock and ``wait`` is false.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; atomic_path still keeps every write whole
        yield
        return
    target = Path(path)
    check_parent(target, option)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(target)
    key = (str(lock.resolve()), threading.get_ident())
    with _held_guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    fd = _acquire(lock, target, wait, option, fcntl)
    with _held_guard:
        _held[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held[key]
        # Unlink before unlocking: a process that opened the old file and gets the lock next
        # sees that its file is no longer the lock file and opens the new one (see `_acquire`).
        lock.unlink(missing_ok=True)
        os.close(fd)


def _acquire(lock: Path, target: Path, wait: bool, option: str, fcntl) -> int:  # noqa: ANN001
    """Open and flock ``lock``; retry when the file was replaced meanwhile. Returns the fd."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            who = f"process {owner}" if owner else "another process"
            raise OutputBusyError(
                f"{option} {target} is being written by {who} (lock {lock.name}): wait for it "
                "to finish, or choose another file"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:  # the previous holder removed it after we opened it
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path that replaces ``path`` when the block finishes without error.

    The temporary file lives in the target's directory so that `os.replace` is an atomic
    rename on the same file system: readers see either the old file or the complete new one, never
    a partial write. Before the rename the file's data are fsync-ed and its permissions set as
    the umask says (``mkstemp`` makes it owner-only), and after it the directory is fsync-ed, so
    the new file survives a power cut too. On any exception (including ``KeyboardInterrupt``) the
    temporary file is removed and the target is left untouched; so it is when a SIGINT or SIGTERM
    arrived under `pyro_emorl.data.interrupts.stop_on_signals` since the last check.

    Args:
        path: Final location of the file. Missing parent directories are created.

    Yields:
        The temporary path to write to. It exists (empty) when the block starts.

    Raises:
        IsADirectoryError: If ``path`` is a directory.
        NotADirectoryError: If ``path`` lies under a file.
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a directory: give a file name")
    check_parent(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.pid{os.getpid()}.", suffix=_TMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        check_interrupted()
        _make_durable(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def is_disk_full(error: BaseException) -> bool:
    """Whether an error says the disk (or a quota, or the file size limit) is exhausted."""
    codes = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
    if isinstance(error, OSError) and error.errno in codes:
        return True
    # HDF5 errors through h5py carry the errno in their text only, e.g. "errno = 28".
    text = str(error)
    return any(f"errno = {code}," in text for code in codes) or "No space left" in text


def disk_full_message(target: str | os.PathLike[str]) -> str:
    """The one line that says ``target`` could not be written because the disk is full."""
    return (
        f"cannot write {Path(target)}: the disk is full (or a quota or file size limit is "
        "reached); free some space or write to another disk. Nothing was written"
    )


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
