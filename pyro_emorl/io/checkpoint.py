"""Checkpoint files: write atomically, find, load (migrating older formats), prune.

A checkpoint is a ``torch.save``-d dict of tensors and plain Python values (no pickled classes),
so it loads with ``torch.load(weights_only=True)``. Files are named ``step-00001234.pt`` by the
number of completed training steps they hold.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pyro_emorl.data.atomic import (
    atomic_path,
    disk_full_message,
    is_disk_full,
    remove_temporaries,
)

Checkpoint = dict[str, Any]

#: Bumped when the layout of the checkpoint dict changes; older formats are migrated on load.
#: 2: the configuration names its model (``config["model"]``), each model family keeps only its
#: own fields, and ``components`` records the registered names (and sources) it was built from.
CHECKPOINT_FORMAT = 2
_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_path(directory: str | os.PathLike[str], step: int) -> Path:
    """Path of the checkpoint after ``step`` completed steps in ``directory``."""
    return Path(directory) / f"step-{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files in ``directory``, oldest (fewest steps) first; ``[]`` if none."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The checkpoint with the most steps in ``directory``, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def load_newest_checkpoint(
    directory: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    warn: Callable[[str], None] | None = None,
) -> tuple[Path, Checkpoint] | None:
    """The newest checkpoint in ``directory`` that loads, falling back over damaged ones.

    A damaged newest checkpoint (truncated by a full disk, corrupted on a copy) is skipped with
    a warning naming it, and the previous kept checkpoint is used; the resumed run repeats the
    steps in between and, when it reaches that step again, writes the file anew.

    Args:
        directory: a run's ``checkpoints/`` folder.
        map_location: device for the tensors.
        warn: receives one line per damaged file skipped (default: none).

    Returns:
        ``(path, checkpoint)``, or ``None`` if ``directory`` holds no checkpoint.

    Raises:
        ValueError: naming the files, if none of them loads.
    """
    found = list_checkpoints(directory)
    for index in range(len(found) - 1, -1, -1):
        path = found[index]
        try:
            return path, load_checkpoint(path, map_location)
        except ValueError as error:
            reason = _first_line(error.__cause__ or error)
            if index == 0:
                if len(found) == 1:
                    raise ValueError(
                        f"{path} is damaged ({reason}) and {directory} holds no older "
                        "checkpoint: start a new run in another directory"
                    ) from error
                raise ValueError(
                    f"no checkpoint in {directory} is readable ({len(found)} are damaged, the "
                    f"oldest, {path.name}: {reason}): start a new run in another directory"
                ) from error
            if warn is not None:
                warn(
                    f"warning: checkpoint {path} is damaged ({reason}); falling back to the "
                    f"previous checkpoint {found[index - 1].name}"
                )
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:150]


def remove_interrupted_writes(
    run_dir: str | os.PathLike[str], warn: Callable[[str], None] | None = None
) -> list[Path]:
    """Delete the temporary files that writes killed mid-way left in a run directory.

    Only the temporaries of what a training run writes are touched: ``metrics.jsonl`` and
    ``config.json`` in ``run_dir``, ``checkpoints/step-N.pt`` and ``figures/step-N.png``.

    Args:
        run_dir: the run directory.
        warn: receives one line listing what was removed, if anything was.

    Returns:
        The deleted paths.
    """
    run_dir = Path(run_dir)
    removed = remove_temporaries(run_dir, r"metrics\.jsonl|config\.json")
    removed += remove_temporaries(run_dir / "checkpoints", r"step-\d+\.pt")
    removed += remove_temporaries(run_dir / "figures", r"step-\d+\.png")
    if removed and warn is not None:
        names = ", ".join(str(p.relative_to(run_dir)) for p in removed)
        warn(
            f"warning: removed {len(removed)} temporary file(s) left by an interrupted write in "
            f"{run_dir}: {names}"
        )
    return removed


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically and durably.

    Through `atomic_path`: the data go to a temporary file in the same directory, which is
    fsync-ed, then renamed over ``path``, and the directory is fsync-ed so the rename survives a
    power cut. Readers (and a run killed at any moment) see either the previous file or the
    complete new one.

    Args:
        checkpoint: tensors and plain Python values only.
        path: destination file; parent directories are created.

    Returns:
        ``path``.
    """
    path = Path(path)
    # Serialised in memory first: torch's own file writer turns a full disk into an unrelated
    # RuntimeError, a plain write keeps the errno.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(buffer.getbuffer())
        except OSError as error:
            if is_disk_full(error):
                raise OSError(disk_full_message(path)) from None
            raise
    return path


def read_torch_file(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, with one clear error for a damaged file.

    Raises:
        ValueError: naming the file, if it is truncated, not a torch file, or holds pickled
            objects other than tensors and plain Python values.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    # torch.load reports a text or random file as anything from KeyError to UnpicklingError.
    except Exception as error:
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated, damaged or not written by torch."
            f"save: {reason[:120]}); use another checkpoint or write it again"
        ) from error


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Load a checkpoint written by `save_checkpoint` (with ``weights_only=True``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a checkpoint of this format.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint = read_torch_file(path, map_location)
    if not isinstance(checkpoint, dict) or "format" not in checkpoint:
        found = type(checkpoint).__name__ if not isinstance(checkpoint, dict) else "no format"
        raise ValueError(f"{path} is not a pyro_emorl checkpoint (found {found})")
    return migrate(checkpoint, path)


def migrate(checkpoint: Checkpoint, path: str | os.PathLike[str] = "checkpoint") -> Checkpoint:
    """``checkpoint`` in the current format (a copy if it was older).

    Format 1 (before models were registered) stored every EfficientMORL field in every
    configuration and no component names: Slot Attention configurations lose the fields that do
    not apply to them, and the names become the ``components`` record.

    Raises:
        ValueError: for a format this version does not know (written by a newer version).
    """
    found = checkpoint.get("format")
    if found == CHECKPOINT_FORMAT:
        return checkpoint
    if found != 1:
        raise ValueError(
            f"{path} has checkpoint format {found!r}; this version of pyro_emorl reads formats "
            f"1 to {CHECKPOINT_FORMAT}: upgrade pyro_emorl to load it"
        )
    checkpoint = dict(checkpoint)
    config = dict(checkpoint["config"])
    config.setdefault("model", "emorl")
    if config["model"] == "slot_attention":
        for name in _EMORL_ONLY_FIELDS:
            config.pop(name, None)
    checkpoint["config"] = config
    checkpoint["components"] = {
        kind: {"name": config[kind] if kind != "model" else config["model"], "source": "format 1"}
        for kind in ("model", "prior", "likelihood", "decoder")
        if kind in config
    }
    checkpoint["format"] = CHECKPOINT_FORMAT
    return checkpoint


#: Fields format-1 Slot Attention configurations carried without using them.
_EMORL_ONLY_FIELDS = ("prior", "dual_gru", "kl_beta", "step_weights", "geco")


#: What a model for inference keeps of a training checkpoint (no optimizer, RNG or data state).
INFERENCE_KEYS = (
    "format",
    "version",
    "components",
    "step",
    "config",
    "model",
    "guide",
    "geco",
    "train_seconds",
    "data",
)


def export_for_inference(
    source: str | os.PathLike[str], destination: str | os.PathLike[str]
) -> Path:
    """Write the inference part of a training checkpoint (about a third of its size).

    The result loads with [load_for_inference][pyro_emorl.io.load_for_inference] and
    ``torch.load(weights_only=True)``, and keeps the configuration, the step count, the training
    seconds and the data seed; it cannot be resumed (the optimizer state is gone).

    Args:
        source: a checkpoint written by ``fit``.
        destination: the file to write (atomically); it must not be ``source``.

    Returns:
        ``destination``.
    """
    source, destination = Path(source), Path(destination)
    if destination.resolve() == source.resolve():
        raise ValueError(f"export {source} to another file, not onto itself")
    checkpoint = load_checkpoint(source)
    slim = {key: checkpoint[key] for key in INFERENCE_KEYS if key in checkpoint}
    return save_checkpoint(slim, destination)


def prune_checkpoints(directory: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints in ``directory``; returns what it deleted."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    old = list_checkpoints(directory)[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old
