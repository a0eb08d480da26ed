"""A training run's output folder belongs to that run.

A run marks its folder with ``run.json`` (written first, atomically) and holds an exclusive lock
on it while it trains (`pyro_emorl.data.atomic.output_lock`), so a second run aimed at the same
folder is refused in one line instead of mixing its log and checkpoints with the first's. A new
run refuses a folder that holds files it did not write, unless told to write beside them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.version import __version__

#: The file that marks a folder as a run's.
RUN_MARKER = "run.json"
#: What a run writes in its folder (besides temporaries of these, named ``.NAME.*.tmp``).
RUN_ENTRIES = frozenset(
    {RUN_MARKER, "config.json", "metrics.jsonl", "checkpoints", "figures", "tensorboard"}
)


def foreign_entries(run_dir: str | os.PathLike[str]) -> list[str]:
    """The names in ``run_dir`` that no training run writes (temporaries excluded), sorted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in run_dir.iterdir()
        if p.name not in RUN_ENTRIES and not (p.name.startswith(".") and p.name.endswith(".tmp"))
    )


def check_new_run_folder(
    run_dir: str | os.PathLike[str], overwrite: bool, clear: bool = True
) -> None:
    """Refuse to start a new run in a folder that holds files it would mix with or replace.

    A folder with checkpoints is a run to resume (the caller checks that first). Otherwise:

    * files that no run writes (your own notes, another tool's output): refused unless
      ``overwrite``, with which they are left alone and the run writes beside them;
    * the files of a run that stopped before its first checkpoint (``run.json``,
      ``config.json``, ``metrics.jsonl``, figures): refused unless ``overwrite``, with which
      they are removed first (a resume starts such a run again too).

    Args:
        run_dir: the output folder.
        overwrite: write beside foreign files and start an unfinished run again.
        clear: remove an unfinished run's files when ``overwrite`` (only one process of a
            distributed job does; the others only check).

    Raises:
        FileExistsError: one line naming the files and the ways on.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    foreign = foreign_entries(run_dir)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise FileExistsError(
            f"{run_dir} holds files that no training run wrote ({shown}): choose a new or "
            "empty output folder, or pass --overwrite (RunOptions(overwrite=True)) to write "
            "beside them"
        )
    leftovers = sorted(p.name for p in run_dir.iterdir() if p.name in RUN_ENTRIES)
    if not leftovers:
        return
    if RUN_MARKER not in leftovers:
        # Names a run writes, but no marker says a run wrote them: never replace them.
        raise FileExistsError(
            f"{run_dir} holds {', '.join(leftovers)}, which a run would replace, but no "
            f"{RUN_MARKER} says a run wrote them: move them away or choose another output folder"
        )
    if not overwrite:
        raise FileExistsError(
            f"{run_dir} holds a run that stopped before its first checkpoint "
            f"({', '.join(leftovers)}): pass --resume or --overwrite to start it again, or "
            "choose another output folder"
        )
    if clear:
        clear_unfinished_run(run_dir)


def clear_unfinished_run(run_dir: str | os.PathLike[str]) -> None:
    """Remove what a run that never wrote a checkpoint left (never a checkpoint, never a file a
    run does not write)."""
    run_dir = Path(run_dir)
    if any((run_dir / "checkpoints").glob("step-*.pt")):
        raise FileExistsError(f"{run_dir} holds checkpoints: resume it or choose another folder")
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def mark_run_folder(run_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``run.json`` (a run id, when and by which version) unless the folder has one;
    returns the marker."""
    path = Path(run_dir) / RUN_MARKER
    if path.is_file():
        marker: dict[str, str] = json.loads(path.read_text())
        return marker
    marker = {
        "run_id": uuid.uuid4().hex,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(marker, indent=2) + "\n")
    return marker
