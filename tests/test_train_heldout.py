"""Evaluation on held-out images while training, and the training-time budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.train.heldout import LOGGED, HeldOutEvaluator
from tests.test_train_loop import _options as loop_options
from tests.test_train_worker import IMAGE_SHAPE, state_of, tiny_config, tiny_dataset
from tests.tiny import num_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


class MaskedImages(torch.utils.data.Dataset):
    """Random images with random one-hot masks over 3 entities (entity 0 the background)."""

    def __init__(self, num_images: int = 10, seed: int = 1) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.rand(num_images, *IMAGE_SHAPE, generator=generator)
        labels = torch.randint(0, 3, (num_images, 1, *IMAGE_SHAPE[1:]), generator=generator)
        self.masks = torch.nn.functional.one_hot(labels, 3).permute(0, 4, 1, 2, 3).float()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"imgs": self.images[index], "masks": self.masks[index]}


def _options(out_dir, **changes) -> train.RunOptions:
    return loop_options(out_dir, **{"figure_every": 0, **changes})


def test_fit_scores_held_out_sets_at_the_start_every_interval_and_the_end(tmp_path) -> None:
    held_out = {"test": MaskedImages(10), "other": MaskedImages(6, seed=2)}
    options = _options(tmp_path, eval_every=3, eval_images=8, eval_batch_size=4)
    result = train.fit(
        tiny_config(steps=7, init_gain=1.0), tiny_dataset(), options, eval_data=held_out
    )
    records = [r for r in train.read_metrics(tmp_path / "metrics.jsonl") if "train_seconds" in r]
    assert [r["step"] for r in records] == [0, 3, 6, 7]
    seconds = [r["train_seconds"] for r in records]
    assert seconds[0] == 0.0 and all(a < b for a, b in zip(seconds, seconds[1:]))
    for name in held_out:
        for metric in LOGGED:
            assert np.isfinite(records[-1][f"{name}/{metric}"]), (name, metric)

    # The logged FG-ARI is sklearn's ARI over foreground pixels of the final model's masks,
    # averaged over the first 8 images (the evaluation draws its noise from seed 0).
    data = held_out["test"]
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(0)
        scores = []
        for start in (0, 4):
            batch = [data[i] for i in range(start, start + 4)]
            images = torch.stack([b["imgs"] for b in batch])
            out = pe.decompose(
                result.model,
                result.guide,
                images,
                num_steps=tiny_config().refinement_steps,
                objective=result.geco.objective,
            )
            predicted = out.final.masks.argmax(1).flatten(1)
            for b, item in enumerate(batch):
                truth = item["masks"].argmax(0).flatten()
                foreground = truth > 0
                scores.append(adjusted_rand_score(truth[foreground], predicted[b][foreground]))
    assert records[-1]["test/fg_ari"] == pytest.approx(float(np.mean(scores)), abs=1e-9)


def test_evaluation_does_not_change_training(tmp_path) -> None:
    """The evaluation uses its own RNG stream: parameters equal those of a run without it."""
    plain = train.fit(tiny_config(steps=6), tiny_dataset(), _options(tmp_path / "plain"))
    evaluated = train.fit(
        tiny_config(steps=6),
        tiny_dataset(),
        _options(tmp_path / "evaluated", eval_every=2),
        eval_data=MaskedImages(4),
    )
    for part in ("model", "guide"):
        for name, value in state_of(plain)[part].items():
            assert torch.equal(state_of(evaluated)[part][name], value), name


def test_resumed_run_logs_each_evaluation_once(tmp_path) -> None:
    options = _options(tmp_path, eval_every=2)
    train.fit(tiny_config(steps=4), tiny_dataset(), options, eval_data=MaskedImages(4))
    resumed = _options(tmp_path, eval_every=2, resume=True)
    train.fit(tiny_config(steps=8), tiny_dataset(), resumed, eval_data=MaskedImages(4))
    records = [r for r in train.read_metrics(tmp_path / "metrics.jsonl") if "train_seconds" in r]
    assert [r["step"] for r in records] == [0, 2, 4, 6, 8]
    seconds = [r["train_seconds"] for r in records]
    assert all(a < b for a, b in zip(seconds[1:], seconds[2:]))  # the clock resumes too


def test_time_budget_stops_with_a_checkpoint_and_a_final_evaluation(tmp_path) -> None:
    options = _options(tmp_path, time_budget_s=1e-9)
    result = train.fit(tiny_config(steps=50), tiny_dataset(), options, eval_data=MaskedImages(4))
    assert result.step == 1
    assert result.checkpoint == tmp_path / "checkpoints" / "step-00000001.pt"
    steps = [
        r["step"] for r in train.read_metrics(tmp_path / "metrics.jsonl") if "test/fg_ari" in r
    ]
    assert steps == [0, 1]


def test_held_out_sets_need_masks() -> None:
    with pytest.raises(ValueError, match="no ground-truth masks"):
        HeldOutEvaluator(tiny_dataset())
    with pytest.raises(ValueError, match="time_budget_s"):
        train.RunOptions(time_budget_s=0)


def test_emorl_train_scores_the_eval_data(tmp_path) -> None:
    from pyro_emorl.cli import main
    from pyro_emorl.data import generate

    data = generate("tetrominoes", tmp_path / "t.h5", 8, 6, progress=False)
    out = tmp_path / "run"
    argv = ["train", "--preset", "tetrominoes_fast", "--data", str(data), "--out", str(out)]
    argv += ["--eval-data", str(data), "--eval-every", "1", "--eval-images", "4", "--steps", "2"]
    argv += ["--batch-size", "2", "--device", "cpu", "--no-progress", "--no-tensorboard"]
    argv += ["--set", "num_slots=2", "--set", "z_dim=8", "--set", "num_layers=1"]
    assert main(argv) == 0
    records = [r for r in train.read_metrics(out / "metrics.jsonl") if "test/fg_ari" in r]
    assert [r["step"] for r in records] == [0, 1, 2]
