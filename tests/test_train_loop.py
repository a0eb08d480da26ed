"""fit(): what a run leaves behind, resume rules, non-finite losses, validation."""

from __future__ import annotations

import json

import pyro
import pytest
import torch
from pyro.infer.util import is_validation_enabled
from torch.utils.data import TensorDataset

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.train.distributed import DistributedContext
from tests.test_train_worker import IMAGE_SHAPE, state_of, tiny_config, tiny_dataset
from tests.tiny import num_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


def _options(out_dir, **changes) -> train.RunOptions:
    fields = dict(
        out_dir=out_dir,
        device="cpu",
        log_every=2,
        checkpoint_every=4,
        figure_every=3,
        progress=False,
        tensorboard=False,
    )
    fields.update(changes)
    return train.RunOptions(**fields)


def test_fit_leaves_checkpoints_metrics_figures_and_config(tmp_path) -> None:
    result = train.fit(tiny_config(steps=6), tiny_dataset(), _options(tmp_path))
    assert (result.step, result.interrupted, result.skipped_steps) == (6, False, 0)
    assert result.checkpoint == tmp_path / "checkpoints" / "step-00000006.pt"
    assert [p.name for p in pe.io.list_checkpoints(tmp_path / "checkpoints")] == [
        "step-00000004.pt",
        "step-00000006.pt",
    ]
    checkpoint = torch.load(result.checkpoint, weights_only=True)
    assert checkpoint["step"] == 6
    assert checkpoint["data"] == {
        "seed": 0,
        "epoch": 1,
        "batch": 0,
        "batches_per_epoch": 6,
        "world_size": 1,
        "global_batch_size": 4,
    }
    assert checkpoint["config"] == tiny_config(steps=6).to_dict()
    for name, value in state_of(result)["model"].items():
        assert torch.equal(checkpoint["model"][name], value)
    assert float(checkpoint["geco"]["beta"]) == float(result.geco.beta)

    records = train.read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6]
    for record in records:
        for key in ("loss", "nll", "kl", "grad_norm", "geco_beta", "geco_C_ema", "lr"):
            assert isinstance(record[key], float), key
        assert record["skipped_total"] == 0 and record["steps_per_s"] > 0
    assert records[-1]["refinement_steps"] == 2
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["step-00000000.png", "step-00000003.png", "step-00000006.png"]
    assert json.loads((tmp_path / "config.json").read_text())["num_slots"] == 3


def test_validation_is_restored(tmp_path) -> None:
    pyro.enable_validation(True)
    train.fit(tiny_config(steps=1), tiny_dataset(), _options(tmp_path, figure_every=0))
    assert is_validation_enabled()


def test_existing_run_needs_resume(tmp_path) -> None:
    train.fit(tiny_config(steps=2), tiny_dataset(), _options(tmp_path, figure_every=0))
    with pytest.raises(FileExistsError, match="--resume"):
        train.fit(tiny_config(steps=4), tiny_dataset(), _options(tmp_path))


def test_resume_extends_a_run_exactly(tmp_path) -> None:
    straight = train.fit(tiny_config(steps=8), tiny_dataset(), _options(tmp_path / "a"))
    options = _options(tmp_path / "b", resume=True)  # resume=True with nothing to resume: fresh
    train.fit(tiny_config(steps=5), tiny_dataset(), options)
    extended = train.fit(tiny_config(steps=8), tiny_dataset(), options)
    assert extended.step == 8
    for part in ("model", "guide", "geco"):
        a, b = state_of(straight)[part], state_of(extended)[part]
        assert all(torch.equal(a[k], b[k]) for k in a), part
    strip = ("steps_per_s", "images_per_s")
    logged = [
        [{k: v for k, v in r.items() if k not in strip} for r in train.read_metrics(d)]
        for d in (tmp_path / "a" / "metrics.jsonl", tmp_path / "b" / "metrics.jsonl")
    ]
    # The shorter run's final record (step 5, off the logging interval) is the only extra one.
    assert [r["step"] for r in logged[1]] == [2, 4, 5, 6, 8]
    assert logged[0] == [r for r in logged[1] if r["step"] != 5]


def test_resume_with_another_config_is_an_error(tmp_path) -> None:
    train.fit(tiny_config(steps=2), tiny_dataset(), _options(tmp_path, figure_every=0))
    options = _options(tmp_path, resume=True)
    with pytest.raises(ValueError, match=r"num_slots: 3 -> 4"):
        train.fit(tiny_config(steps=4, num_slots=4), tiny_dataset(), options)


def test_non_finite_steps_are_skipped_and_counted(tmp_path) -> None:
    images = tiny_dataset(8).tensors[0].clone()
    images[5, 0, 0, 0] = float("nan")  # one bad image: one bad batch per epoch of 2
    result = train.fit(
        tiny_config(steps=6), TensorDataset(images), _options(tmp_path, figure_every=0)
    )
    assert result.skipped_steps == 3
    records = train.read_metrics(tmp_path / "metrics.jsonl")
    assert sum(r["skipped"] for r in records) == 3
    assert records[-1]["skipped_total"] == 3
    checkpoint = pe.io.load_checkpoint(result.checkpoint)
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())


def test_too_many_non_finite_steps_in_a_row_stop_the_run(tmp_path) -> None:
    images = torch.full((8, *IMAGE_SHAPE), float("nan"))
    images[0] = 0.5  # batches of one: 7 bad steps in every 8, at least 4 of them in a row
    options = _options(tmp_path, figure_every=0, max_skipped_in_a_row=3)
    with pytest.raises(train.NonFiniteLossError, match="consecutive steps"):
        train.fit(tiny_config(steps=16, batch_size=1), TensorDataset(images), options)
    for path in pe.io.list_checkpoints(tmp_path / "checkpoints"):
        checkpoint = pe.io.load_checkpoint(path)
        assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())


def test_the_global_batch_must_split_evenly(tmp_path) -> None:
    context = DistributedContext(rank=0, world_size=3, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="divisible by the number of processes 3"):
        train.Trainer(tiny_config(), tiny_dataset(), _options(tmp_path), context)


def test_images_outside_the_unit_interval_are_rejected_up_front(tmp_path) -> None:
    images = tiny_dataset().tensors[0] * 255
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        train.fit(tiny_config(), TensorDataset(images), _options(tmp_path))


def test_resume_with_another_seed_is_an_error(tmp_path) -> None:
    train.fit(tiny_config(steps=1), tiny_dataset(), _options(tmp_path, figure_every=0))
    with pytest.raises(ValueError, match="seed 0, not 1"):
        train.fit(tiny_config(steps=2), tiny_dataset(), _options(tmp_path, resume=True, seed=1))


def test_lists_for_tuples_are_the_same_config(tmp_path) -> None:
    lists = tiny_config(steps=1, image_shape=[3, 12, 12])
    lists = lists.replace(training={"curriculum": [[-1, 2]]})
    train.fit(lists, tiny_dataset(), _options(tmp_path, figure_every=0))
    tuples = tiny_config(steps=2).replace(training={"curriculum": ((-1, 2),)})
    assert train.fit(tuples, tiny_dataset(), _options(tmp_path, resume=True)).step == 2


def test_kl_warmup_is_logged_acts_and_resumes_exactly(tmp_path) -> None:
    config = tiny_config(steps=8, kl_beta=0.5).replace(training={"kl_warmup_steps": 6})
    straight = train.fit(config, tiny_dataset(), _options(tmp_path / "a", figure_every=0))
    records = train.read_metrics(tmp_path / "a" / "metrics.jsonl")
    # the weight of each record's last step: the 0-based steps 1, 3, 5, 7
    assert [r["kl_weight"] for r in records] == pytest.approx([0.5 * 2 / 6, 0.5 * 4 / 6, 0.5, 0.5])
    options = _options(tmp_path / "b", figure_every=0, resume=True)
    train.fit(config.replace(training={"steps": 3}), tiny_dataset(), options)
    resumed = train.fit(config, tiny_dataset(), options)
    unwarmed = train.fit(
        tiny_config(steps=8, kl_beta=0.5), tiny_dataset(), _options(tmp_path / "c", figure_every=0)
    )
    for part in ("model", "guide"):
        a, b, c = (state_of(r)[part] for r in (straight, resumed, unwarmed))
        assert all(torch.equal(a[k], b[k]) for k in a), part
        assert not all(torch.equal(a[k], c[k]) for k in a), part


def test_noise_warmup_is_logged_acts_and_resumes_exactly(tmp_path) -> None:
    config = tiny_config(steps=8, init_gain=1.0).replace(training={"noise_warmup_steps": 4})
    straight = train.fit(config, tiny_dataset(), _options(tmp_path / "a", figure_every=0))
    records = train.read_metrics(tmp_path / "a" / "metrics.jsonl")
    # the factor of each record's last step: the 0-based steps 1, 3, 5, 7
    assert [r["noise_factor"] for r in records] == pytest.approx([0.25, 0.75, 1.0, 1.0])
    options = _options(tmp_path / "b", figure_every=0, resume=True)
    train.fit(config.replace(training={"steps": 3}), tiny_dataset(), options)
    resumed = train.fit(config, tiny_dataset(), options)
    plain = tiny_config(steps=8, init_gain=1.0)
    unwarmed = train.fit(plain, tiny_dataset(), _options(tmp_path / "c", figure_every=0))
    for part in ("model", "guide"):
        a, b, c = (state_of(r)[part] for r in (straight, resumed, unwarmed))
        assert all(torch.equal(a[k], b[k]) for k in a), part
        assert not all(torch.equal(a[k], c[k]) for k in a), part
