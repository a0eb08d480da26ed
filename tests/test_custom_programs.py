"""Programs of one's own (here a custom prior) train through ``fit`` and load back for inference."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.io import load_for_inference
from pyro_emorl.nn import ConditionalGaussian, raw_to_scale
from pyro_emorl.sites import latent_site
from tests.test_train_worker import tiny_config, tiny_dataset
from tests.tiny import num_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


class StudentTPrior(nn.Module):
    """A reversed hierarchical prior whose top layer is a Student-t with learned dof."""

    def __init__(self, z_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.log_df = nn.Parameter(torch.tensor(1.0))
        self.conditional = ConditionalGaussian(z_dim)
        self.register_buffer("zero", torch.zeros(z_dim))

    def forward(self, images: pyro.plate, slots: pyro.plate) -> torch.Tensor:
        with images, slots:
            top = dist.StudentT(self.log_df.exp(), self.zero, 1.0).to_event(1)
            z_top = z = pyro.sample(latent_site(self.num_layers), top)
            for layer in reversed(range(1, self.num_layers)):
                loc, raw_scale = self.conditional(z)
                normal = dist.Normal(loc, raw_to_scale(raw_scale)).to_event(1)
                z = pyro.sample(latent_site(layer), normal)
        return z_top


def build_programs(config: pe.EMORLConfig, seed: int = 0):
    """The library's model with the Student-t prior in place of its own, and its guide."""
    pyro.set_rng_seed(seed)
    model, guide = pe.build(config)
    model = pe.SlotModel(
        prior=StudentTPrior(config.z_dim, config.num_layers),
        decoder=model.decoder,
        likelihood=model.likelihood,
        num_slots=config.num_slots,
        image_shape=config.image_shape,
    )
    return model, guide


def _options(out_dir, **changes) -> train.RunOptions:
    fields = dict(out_dir=out_dir, device="cpu", log_every=2, checkpoint_every=2, figure_every=0)
    fields.update(progress=False, tensorboard=False, **changes)
    return train.RunOptions(**fields)


def test_a_custom_prior_trains_resumes_and_loads_back(tmp_path) -> None:
    config = tiny_config(steps=4)
    model, guide = build_programs(config)
    first = train.fit(
        config.replace(training={"steps": 2}),
        tiny_dataset(),
        _options(tmp_path),
        model=model,
        guide=guide,
    )
    initial_df = 1.0
    assert first.model.prior.log_df.item() != initial_df  # the prior's own parameter trained

    model, guide = build_programs(config, seed=1)  # fresh programs; resume loads the weights
    result = train.fit(
        config, tiny_dataset(), _options(tmp_path, resume=True), model=model, guide=guide
    )
    assert result.step == 4

    with pytest.raises(ValueError, match=r"passed to fit.*model=\.\.\., guide=\.\.\."):
        load_for_inference(result.checkpoint)

    model, guide = build_programs(config, seed=2)
    loaded = load_for_inference(result.checkpoint, model=model, guide=guide)
    assert loaded.model is model and not loaded.model.training
    for name, value in result.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name
    for name, value in result.guide.state_dict().items():
        assert torch.equal(loaded.guide.state_dict()[name], value), name
    images = torch.stack([tiny_dataset()[i][0] for i in range(2)])
    with torch.no_grad():
        out = pe.decompose(loaded.model, loaded.guide, images, num_steps=1)
    assert out.final.masks.shape[:2] == (2, config.num_slots)


def test_weights_that_fit_no_program_are_named(tmp_path) -> None:
    config = tiny_config(steps=2)
    result = train.fit(config, tiny_dataset(), _options(tmp_path))
    model, guide = build_programs(config)
    with pytest.raises(ValueError, match=r"unexpected \(prior\.loc, prior\.scale\)"):
        load_for_inference(result.checkpoint, model=model, guide=guide)
    with pytest.raises(ValueError, match="both model= and guide="):
        load_for_inference(result.checkpoint, model=model)
