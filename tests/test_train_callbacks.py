"""Each of the training loop's callbacks alone (`Trainer.run` with that one callback), and a
user's own passed to `fit`."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from pyro_emorl import train
from pyro_emorl.train.distributed import distributed_context
from tests.test_train_worker import IMAGE_SHAPE, tiny_config, tiny_dataset


def _options(out_dir: Path, **changes: object) -> train.RunOptions:
    fields: dict[str, object] = dict(out_dir=out_dir, device="cpu", progress=False)
    fields.update(tensorboard=False, log_every=2, checkpoint_every=4, figure_every=3)
    return train.RunOptions(**(fields | changes))


def _run(tmp_path: Path, callbacks: list[train.Callback], steps: int = 5, **changes: object):
    """One run whose only callbacks are ``callbacks``."""
    options = _options(tmp_path, **changes)
    with distributed_context("cpu") as context:
        trainer = train.Trainer(tiny_config(steps=steps), tiny_dataset(), options, context)
        return trainer, trainer.run(callbacks)


class Recorder(train.Callback):
    """Writes down every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, train.StepEnd | None]] = []

    def on_train_start(self, trainer: train.Trainer) -> None:
        self.calls.append(("start", trainer.step, None))

    def on_step_end(self, trainer: train.Trainer, end: train.StepEnd) -> None:
        self.calls.append(("step", trainer.step, end))

    def on_train_end(self, trainer: train.Trainer) -> None:
        self.calls.append(("end", trainer.step, None))


def test_a_users_callback_sees_every_step(tmp_path) -> None:
    recorder = Recorder()
    result = train.fit(
        tiny_config(steps=3), tiny_dataset(), _options(tmp_path), callbacks=[recorder]
    )
    assert result.step == 3
    assert [(kind, step) for kind, step, _ in recorder.calls] == [
        ("start", 0), ("step", 1), ("step", 2), ("step", 3), ("end", 3)
    ]  # fmt: skip
    ends = [end for kind, _, end in recorder.calls if kind == "step"]
    assert [e.last for e in ends] == [False, False, True] and not any(e.interrupted for e in ends)


def test_alone_no_callback_writes_nothing(tmp_path) -> None:
    trainer, result = _run(tmp_path, [])
    assert result.step == 5 and result.checkpoint is None
    # Only what the trainer itself writes: the run's marker and configuration.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "run.json"]


def test_checkpoints_alone(tmp_path) -> None:
    _, result = _run(tmp_path, [train.Checkpoints(every=2, keep=2)])
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000004.pt", "step-00000005.pt"]  # every 2, the last, 2 kept
    assert result.checkpoint == tmp_path / "checkpoints" / "step-00000005.pt"


def test_metrics_log_alone(tmp_path) -> None:
    _run(tmp_path, [train.MetricsLog(2, 20, tensorboard=False, progress=False)])
    steps = [r["step"] for r in train.read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == [2, 4, 5]  # the interval, and the last step


def test_figures_alone(tmp_path) -> None:
    _run(tmp_path, [train.DecompositionFigures(every=3)])
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert names == ["step-00000000.png", "step-00000003.png", "step-00000005.png"]


def test_held_out_scores_alone(tmp_path, capsys) -> None:
    masks = torch.zeros(4, 2, 1, *IMAGE_SHAPE[1:])
    masks[:, 0, :, :6] = 1
    masks[:, 1, :, 6:] = 1
    held_out = [{"imgs": torch.rand(*IMAGE_SHAPE), "masks": masks[i]} for i in range(4)]
    scores = train.HeldOutScores(held_out, num_images=4, batch_size=2, every=0)
    _run(tmp_path, [scores])
    lines = [line for line in capsys.readouterr().err.splitlines() if "fg_ari" in line]
    assert len(lines) == 2 and lines[0].startswith("step 0 ") and lines[1].startswith("step 5 ")


def test_time_budget_alone_ends_the_run_as_its_last_step(tmp_path) -> None:
    recorder = Recorder()
    _, result = _run(tmp_path, [train.TimeBudget(1e-9), recorder])
    assert result.step == 1 and not result.interrupted
    assert recorder.calls[1] == ("step", 1, train.StepEnd(last=True, interrupted=False))


class SignalAt(train.Callback):
    """Sends this process SIGINT after step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer: train.Trainer, end: train.StepEnd) -> None:
        if trainer.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_signal_alone_interrupts_after_the_next_step(tmp_path) -> None:
    recorder = Recorder()
    # The handler in place before (a process started in the background may ignore SIGINT).
    before = signal.getsignal(signal.SIGINT)
    _, result = _run(tmp_path, [train.StopOnSignal(), SignalAt(2), recorder], steps=10)
    assert result.interrupted and result.step == 3
    assert recorder.calls[-2] == ("step", 3, train.StepEnd(last=False, interrupted=True))
    assert signal.getsignal(signal.SIGINT) is before  # restored


def test_the_pace_report_alone_names_the_hours_left(tmp_path, capsys) -> None:
    _run(tmp_path, [train.PaceReport(after=2, hours=1e6)], steps=4)
    assert "steps left take about" not in capsys.readouterr().err  # shorter than the bar
    _run(tmp_path / "long", [train.PaceReport(after=2, hours=1e-12)], steps=4)
    message = capsys.readouterr().err
    assert "s per step on cpu, the 2 steps left take about" in message
    assert "--minutes N" in message


@pytest.mark.parametrize("budget", [None, 60.0])
def test_the_default_callbacks_follow_the_options(tmp_path, budget) -> None:
    options = _options(tmp_path, time_budget_s=budget)
    with distributed_context("cpu") as context:
        trainer = train.Trainer(tiny_config(steps=1), tiny_dataset(), options, context)
        kinds = [type(c).__name__ for c in train.callbacks.default_callbacks(trainer, None)]
    expected = ["StopOnSignal", "MetricsLog", "PaceReport", "DecompositionFigures", "Checkpoints"]
    assert kinds == (["TimeBudget"] if budget else []) + expected
    json.dumps(kinds)  # plain names
