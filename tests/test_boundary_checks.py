"""Inputs checked at the boundary, in one line, before any work: custom priors' sites and return
value, images' range, decoders' channels, damaged or diverged checkpoints, a diverging recipe."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.io.checkpoint import load_checkpoint, save_checkpoint
from tests.test_train_worker import tiny_config as training_config
from tests.test_train_worker import tiny_dataset
from tests.tiny import tiny_config


class ForgetfulPrior(nn.Module):
    """Claims two layers but samples only z_1, or returns the wrong layer."""

    def __init__(self, z_dim: int, returns_first: bool) -> None:
        super().__init__()
        self.num_layers = 2
        self.z_dim = z_dim
        self.returns_first = returns_first

    def forward(self, images: pyro.plate, slots: pyro.plate) -> torch.Tensor:
        normal = dist.Normal(torch.zeros(self.z_dim), 1.0).to_event(1)
        with images, slots:
            z_1 = pyro.sample("z_1", normal)
            if not self.returns_first:
                return z_1  # forgets z_2
            pyro.sample("z_2", normal)
        return z_1  # returns z_1 instead of z_2


@pytest.mark.parametrize(
    ("returns_first", "message"),
    [(False, "samples no site z_2"), (True, "must return the value of z_2")],
)
def test_a_custom_prior_is_checked_at_its_first_call(returns_first, message) -> None:
    config = tiny_config(num_layers=2)
    model, _ = pe.build(config)
    model.prior = ForgetfulPrior(config.z_dim, returns_first)
    with pytest.raises(ValueError, match=message):
        model(num_images=1)


def test_a_plain_function_is_refused_as_a_prior() -> None:
    model, _ = pe.build(tiny_config())

    def prior(images, slots):
        return None

    with pytest.raises(TypeError, match="is not a SlotPrior: see pyro_emorl.protocols"):
        pe.SlotModel(prior, model.decoder, model.likelihood, 3, (3, 12, 12))


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.full((1, 3, 12, 12), 255.0), r"\[0, 1\]"),
        (torch.full((1, 3, 12, 12), -torch.inf), "finite|NaN|inf"),
    ],
)
def test_decompose_checks_the_images_even_without_pyro_validation(images, message) -> None:
    model, guide = pe.build(tiny_config())
    pyro.enable_validation(False)
    try:
        with pytest.raises(ValueError, match=message):
            pe.decompose(model, guide, images, num_steps=0)
    finally:
        pyro.enable_validation(True)


def test_the_decoders_refuse_images_that_are_not_rgb() -> None:
    with pytest.raises(ValueError, match="makes RGB images, but image_shape has 1 channel"):
        pe.build(tiny_config(image_shape=(1, 12, 12)))


def test_a_text_file_is_not_a_checkpoint(tmp_path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello, this is not a checkpoint\n")
    with pytest.raises(ValueError, match="notes.pt is not a readable checkpoint"):
        pe.load_for_inference(path)


def _options(out_dir, **changes) -> train.RunOptions:
    fields = dict(out_dir=out_dir, device="cpu", progress=False, tensorboard=False)
    fields.update(figure_every=0, log_every=1, checkpoint_every=1)
    return train.RunOptions(**(fields | changes))


def test_a_checkpoint_with_nan_weights_is_refused_to_load_and_to_resume(tmp_path) -> None:
    result = train.fit(training_config(steps=1), tiny_dataset(), _options(tmp_path))
    checkpoint = load_checkpoint(result.checkpoint)
    name = next(iter(checkpoint["model"]))
    checkpoint["model"][name] = torch.full_like(checkpoint["model"][name], torch.nan)
    save_checkpoint(checkpoint, result.checkpoint)
    with pytest.raises(ValueError, match=f"weight {name} holds NaN or infinite values"):
        pe.load_for_inference(result.checkpoint)
    with pytest.raises(ValueError, match=f"weight {name} holds NaN or infinite values"):
        train.fit(training_config(steps=2), tiny_dataset(), _options(tmp_path, resume=True))


def test_a_diverging_recipe_ends_in_a_value_error(tmp_path) -> None:
    config = training_config(steps=40).replace(training={"lr": 1e10, "warmup_steps": 0})
    options = _options(tmp_path, max_skipped_in_a_row=3)
    with pytest.raises(train.NonFiniteLossError, match="Lower the learning rate") as raised:
        train.fit(config, tiny_dataset(), options)
    assert isinstance(raised.value, ValueError)  # the command line's one-line user error
