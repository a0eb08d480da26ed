"""Import of official EfficientMORL weights and checkpoint files."""

from __future__ import annotations

import pytest
import torch

from pyro_emorl import EMORLConfig, decompose, presets
from pyro_emorl.io import official as official_io
from tests.test_reference_fixtures import FIXTURES


@pytest.fixture(scope="module")
def official():
    if not FIXTURES:
        pytest.skip("no reference fixtures")
    fixture = torch.load(FIXTURES[0], weights_only=False)
    return EMORLConfig.from_official(fixture["config"]), fixture["state_dict"]


def _assert_same_weights(a, b):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_checkpoint_file_with_module_prefix(tmp_path, official):
    config, state_dict = official
    checkpoint = {
        "step": 200_000,
        "model": {f"module.{k}": v.float() for k, v in state_dict.items()},
        "model_opt": {"state": {}, "param_groups": [{"lr": 4e-4, "params": [0, 1]}]},
        "kl_beta": 1.0,
    }
    path = tmp_path / "emorl-tetrominoes-seed-1200-state-200000.pth"
    torch.save(checkpoint, path)
    model, guide, geco = official_io.load_official(path, config)
    reference, ref_guide, _ = official_io.load_official(
        {k: v.float() for k, v in state_dict.items()}, config
    )
    _assert_same_weights(model, reference)
    _assert_same_weights(guide, ref_guide)
    assert set(geco) == {"C_ema", "beta"}
    # A loaded checkpoint is a working model: it decomposes images.
    images = torch.rand(2, *config.image_shape)
    with torch.no_grad():
        out = decompose(model, guide, images, num_steps=1)
    assert torch.isfinite(out.final.nll).all()
    torch.testing.assert_close(out.final.masks.sum(1), torch.ones(2, 1, 35, 35))


def test_old_key_names_are_renamed(official):
    config, state_dict = official
    old = {}
    for key, value in state_dict.items():
        if key.startswith("hvae_networks.pos_embed_projection"):
            key = key.replace("hvae_networks.", "")
        elif key.startswith("hvae_networks.encoder_pt_"):
            key = key.replace("hvae_networks.", "")
        elif key.startswith("hvae_networks."):
            key = key.replace("hvae_networks.", "object_discovery_block.")
        old[f"module.{key}"] = value
    old["module.object_discovery_block.gru.cell.zeros1"] = torch.zeros(32, 32)
    old["module.generation_relation.weight"] = torch.zeros(3)
    new = official_io.convert_state_dict(state_dict, config)
    renamed = official_io.convert_state_dict(old, config)
    for ours, theirs in zip(new[:2], renamed[:2]):
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key


def test_geco_state_is_extracted(official):
    config, state_dict = official
    _, _, geco = official_io.convert_state_dict(state_dict, config)
    assert geco["C_ema"].item() == state_dict["geco_C_ema"].item()
    assert geco["beta"].item() == state_dict["geco_beta"].item()


def test_other_configuration_is_refused(official):
    _, state_dict = official
    with pytest.raises(ValueError, match="does not match the configuration"):
        official_io.convert_state_dict(state_dict, presets.multi_dsprites())
    with pytest.raises(ValueError, match="use_DualGRU"):
        official_io.convert_state_dict(state_dict, presets.tetrominoes(dual_gru=False))


def test_from_official_names():
    net = {
        "K": 7, "z_size": 64, "input_size": [3, 96, 96], "stochastic_layers": 3,
        "refinement_iters": 1, "log_scale": -2.3025851, "image_decoder": "iodine",
        "image_likelihood": "GMM", "bottom_up_prior": False, "reverse_prior_plusplus": True,
        "use_DualGRU": True,
    }  # fmt: skip
    config = EMORLConfig.from_official(net)
    clevr = presets.clevr6()
    for field in ("image_shape", "num_slots", "z_dim", "num_layers", "decoder", "likelihood"):
        assert getattr(config, field) == getattr(clevr, field)
    assert config.prior == "reversed++"
    assert EMORLConfig.from_official({**net, "reverse_prior_plusplus": False}).prior == "reversed"
    bottom_up = {**net, "bottom_up_prior": True, "reverse_prior_plusplus": False}
    assert EMORLConfig.from_official(bottom_up).prior == "bottom_up"
    with pytest.raises(ValueError, match="unknown official Net options"):
        EMORLConfig.from_official({**net, "Kslots": 3})
