"""The metrics file (JSON lines, torn-line tolerant, truncated on resume) and the TensorBoard
hand-off."""

from __future__ import annotations

import json

from matplotlib.figure import Figure

from pyro_emorl.train import logger
from pyro_emorl.train.logger import RunLogger, read_metrics, truncate_metrics


def test_records_are_appended_and_read_back(tmp_path) -> None:
    log = RunLogger(tmp_path, tensorboard=False)
    log.log({"step": 1, "loss": 2.5, "note": None})
    log.log({"step": 2, "loss": 1.5, "note": None})
    log.close()
    assert not log.tensorboard
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"step": 1, "loss": 2.5, "note": None},
        {"step": 2, "loss": 1.5, "note": None},
    ]


def test_a_torn_last_line_is_ignored_and_truncation_keeps_earlier_steps(tmp_path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"step": s, "loss": float(s)}) for s in (10, 20, 30)]
    path.write_text("\n".join(lines) + '\n{"step": 40, "lo')  # killed mid-write
    assert [r["step"] for r in read_metrics(path)] == [10, 20, 30]
    truncate_metrics(path, 20)
    assert [r["step"] for r in read_metrics(path)] == [10, 20]
    assert path.read_text().endswith("}\n")
    truncate_metrics(tmp_path / "missing.jsonl", 5)  # nothing to do


class _FakeWriter:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.calls.append(("scalar", tag, value, step))

    def add_figure(self, tag: str, figure: Figure, step: int, close: bool) -> None:
        self.calls.append(("figure", tag, step, close))

    def close(self) -> None:
        self.calls.append(("close",))


def test_numbers_and_figures_go_to_tensorboard(tmp_path, monkeypatch) -> None:
    writer = _FakeWriter()
    monkeypatch.setattr(logger, "_tensorboard_writer", lambda directory: writer)
    log = RunLogger(tmp_path)
    log.log({"step": 3, "loss": 1.0, "skipped": 0, "nll": None})
    log.figure("decomposition", Figure(), 3)
    log.close()
    assert log.tensorboard
    assert writer.calls == [
        ("scalar", "train/loss", 1.0, 3),
        ("scalar", "train/skipped", 0, 3),
        ("figure", "decomposition", 3, False),
        ("close",),
    ]
