"""Training metrics: always a JSON-lines file, and TensorBoard when it is installed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyro_emorl.data.atomic import atomic_path

if TYPE_CHECKING:  # matplotlib is imported only by runs that draw figures
    from matplotlib.figure import Figure

Record = dict[str, Any]


def read_metrics(path: str | os.PathLike[str]) -> list[Record]:
    """The records of a metrics file, skipping a torn last line (a run killed mid-write)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def truncate_metrics(path: str | os.PathLike[str], last_step: int) -> None:
    """Keep only the records with ``step <= last_step`` (atomically): a resumed run logs the
    later steps again."""
    path = Path(path)
    if not path.is_file():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= last_step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


class RunLogger:
    """Writes scalars to ``metrics.jsonl`` (one JSON object per line, flushed per record) and,
    if the ``tensorboard`` package is installed and ``tensorboard`` is true, to TensorBoard.

    Args:
        out_dir: the run directory; files go to ``out_dir/metrics.jsonl`` and
            ``out_dir/tensorboard/``.
        tensorboard: use TensorBoard when available.
    """

    def __init__(self, out_dir: str | os.PathLike[str], tensorboard: bool = True) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")
        self._writer = _tensorboard_writer(Path(out_dir) / "tensorboard") if tensorboard else None

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard receives the metrics."""
        return self._writer is not None

    def log(self, record: Record, prefix: str = "train") -> None:
        """Append ``record`` (must hold ``step``); numbers also go to TensorBoard as
        ``<prefix>/<name>``."""
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for name, value in record.items():
                if name != "step" and isinstance(value, int | float):
                    self._writer.add_scalar(f"{prefix}/{name}", value, record["step"])

    def figure(self, tag: str, figure: Figure, step: int) -> None:
        """Send a figure to TensorBoard (no-op without it)."""
        if self._writer is not None:
            self._writer.add_figure(tag, figure, step, close=False)

    def close(self) -> None:
        """Flush and close the files."""
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def _tensorboard_writer(directory: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(directory))
