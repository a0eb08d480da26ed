"""A record of the pixel arrays of an HDF5 file whose full scan passed, so that opening the same
file again does not read every image again.

The record is a small JSON file in the user's cache, ``$PYRO_EMORL_CACHE/scans/`` (default
``~/.cache/pyro_emorl/scans/``), named after a hash of the data file's resolved path and written
atomically; nothing is written next to the data. It holds the identity the data file had when it
was scanned — resolved path, device, inode, size and modification time in nanoseconds — and the
arrays that passed. A file modified since (new size or time) or replaced by another (new inode)
no longer matches, and is scanned again; so is a file that was modified less than
`TIMESTAMP_SLACK_NS` before the record was written, because a second modification within one
tick of the file system's clock would keep the same time.

Every process of the user that opens the file (each training or evaluation run, each distributed
rank on the machine) finds the record. Where the cache cannot be written nothing is recorded and
every open scans, as without a record.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from pyro_emorl.data.atomic import atomic_path, remove_stale_temporaries
from pyro_emorl.data.generation import resolve_cache_dir

FORMAT_NAME = "pyro_emorl-pixel-scans"
# Bump when the scan's rules change: records of the old rules are then ignored.
FORMAT_VERSION = 1
#: A record only counts if the data file's modification time is at least this much older than
#: the record's own (both set by the same file system's clock): coarse clocks (2 s on FAT) would
#: otherwise let a modification right after the scan keep the recorded time.
TIMESTAMP_SLACK_NS = 2_000_000_000


@dataclass(frozen=True)
class FileIdentity:
    """What tells one version of a file from another, short of reading it."""

    path: str
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """The identity ``path`` (already resolved) has now."""
        stat = path.stat()
        return cls(str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ScanRecord:
    """The record of one HDF5 file's passed scans, tied to the identity the file has when this
    object is made: make it before scanning, so that a file changed during a scan is not
    recorded as passed.

    Args:
        data_path: The HDF5 file (it must exist).
        cache_dir: Where records live; default ``$PYRO_EMORL_CACHE`` or ``~/.cache/pyro_emorl``
            (records go to its ``scans/`` folder).
    """

    def __init__(
        self, data_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        data = Path(data_path).resolve()
        name = hashlib.sha256(str(data).encode()).hexdigest()[:32]
        self.path = resolve_cache_dir(cache_dir) / "scans" / f"{name}.json"
        self.identity = FileIdentity.of(data)

    def _passed(self) -> list[str]:
        """The arrays the record lists for this identity; ``[]`` without a trusted record."""
        try:
            with open(self.path, encoding="utf-8") as f:
                written_ns = os.fstat(f.fileno()).st_mtime_ns
                content = json.load(f)
        except (OSError, ValueError):  # no record, an unreadable one, or one that is not JSON
            return []
        if not isinstance(content, dict) or content.get("file") != asdict(self.identity):
            return []
        if content.get("format") != FORMAT_NAME or content.get("version") != FORMAT_VERSION:
            return []
        if self.identity.mtime_ns + TIMESTAMP_SLACK_NS > written_ns:
            return []
        passed = content.get("passed")
        return [a for a in passed if isinstance(a, str)] if isinstance(passed, list) else []

    def passed(self, array: str) -> bool:
        """Whether ``array`` (a dataset name in the file, e.g. ``"/train/imgs"``) passed a scan
        of the file as it is identified here."""
        return array in self._passed()

    def add(self, array: str) -> None:
        """Record that ``array`` passed its scan; silently nothing if the record cannot be
        written (a read-only cache): the next open then scans again."""
        passed = sorted({*self._passed(), array})
        content = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "file": asdict(self.identity),
            "passed": passed,
        }
        try:
            remove_stale_temporaries(self.path)
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
        except OSError:
            pass
