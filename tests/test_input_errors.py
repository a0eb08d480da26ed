"""Bad input is refused at the API boundary with a message that says what is wrong."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

import pyro_emorl as pe
from pyro_emorl.infer import GECO, RefinementCurriculum, RefinementELBO
from pyro_emorl.io import official as official_io
from tests.reference import BUNDLED_FIXTURES
from tests.tiny import IMAGE_SHAPE, B, build_random, num_threads, random_images, tiny_config

TETROMINOES_FIXTURE = BUNDLED_FIXTURES / "tetrominoes_elbo_b3.pt"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with num_threads(1):
        yield


@pytest.fixture(scope="module")
def model_and_guide():
    return build_random()


def _entry_points(model, guide):
    """Every way images enter the library: the loss (module and ELBO methods), model, guide."""
    elbo = RefinementELBO(num_steps=1)
    return {
        "ELBOModule": lambda x: elbo(model, guide)(x),
        "loss": lambda x: elbo.loss(model, guide, x),
        "steps": lambda x: elbo.steps(model, guide, x),
        "model": lambda x: model(x),
        "guide": lambda x: guide(x),
    }


ENTRY_POINTS = ["ELBOModule", "loss", "steps", "model", "guide"]
C, H, W = IMAGE_SHAPE


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    ("make_images", "match"),
    [
        (lambda x: x[0], r"must have shape \[B, C, H, W\].*unsqueeze\(0\)"),  # one image, no batch
        (lambda x: x[0, 0], r"must have shape \[B, C, H, W\]"),
        (lambda x: x[:, :1], r"must be \[B, 3, 12, 12\], got \(2, 1, 12, 12\)"),  # channels
        (lambda x: x[..., :10], r"must be \[B, 3, 12, 12\].*resize"),  # size
        (lambda x: x.permute(0, 2, 3, 1), r"channel axis looks last.*permute\(0, 3, 1, 2\)"),
        (lambda x: (x * 255).to(torch.uint8), r"floating point.*uint8.*/ 255"),
        (lambda x: x > 0.5, r"floating point"),
        (lambda x: x * 2 - 1, r"must lie in \[0, 1\].*\(x \+ 1\) / 2"),
        (lambda x: x * 255, r"must lie in \[0, 1\].*/ 255"),
        (lambda x: torch.where(x > 0.9, torch.nan, x), r"NaN or infinite"),
        (lambda x: torch.where(x > 0.9, torch.inf, x), r"NaN or infinite"),
    ],
    ids=[
        "3d",
        "2d",
        "channels",
        "size",
        "channels_last",
        "uint8",
        "bool",
        "minus_one_to_one",
        "0_to_255",
        "nan",
        "inf",
    ],
)
def test_bad_images_raise_a_clear_value_error(model_and_guide, entry, make_images, match):
    images = make_images(random_images())
    with pytest.raises(ValueError, match=match):
        _entry_points(*model_and_guide)[entry](images)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_non_tensor_images_raise_a_type_error(model_and_guide, entry):
    with pytest.raises(TypeError, match="must be a torch.Tensor, got ndarray"):
        _entry_points(*model_and_guide)[entry](random_images().numpy())


def test_value_checks_follow_pyro_validation(model_and_guide):
    """Range and NaN checks cost a device sync: they follow Pyro's validation flag. Shape and
    dtype checks are always on."""
    model, guide = model_and_guide
    elbo = RefinementELBO(num_steps=0)
    pyro.enable_validation(False)
    try:
        assert isinstance(elbo.loss(model, guide, random_images() * 2), float)
        with pytest.raises(ValueError, match="floating point"):
            elbo.loss(model, guide, (random_images() * 255).to(torch.uint8))
        with pytest.raises(ValueError, match="channel axis looks last"):
            elbo.loss(model, guide, random_images().permute(0, 2, 3, 1))
    finally:
        pyro.enable_validation(True)


def test_valid_edge_values_are_accepted(model_and_guide):
    model, guide = model_and_guide
    elbo = RefinementELBO(num_steps=0)
    for images in (torch.zeros(B, *IMAGE_SHAPE), torch.ones(1, *IMAGE_SHAPE)):
        assert isinstance(elbo.loss(model, guide, images.double()), float)


@pytest.mark.parametrize("num_slots", [0, -1, 2.5, True, "3"])
def test_bad_number_of_slots_at_call_time(model_and_guide, num_slots):
    model, guide = model_and_guide
    elbo = RefinementELBO(num_steps=0)
    with pytest.raises(ValueError, match=r"number of slots K must be an integer >= 1"):
        elbo.loss(model, guide, random_images(), num_slots=num_slots)
    with pytest.raises(ValueError, match=r"number of slots K must be an integer >= 1"):
        model(num_images=2, num_slots=num_slots)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"num_slots": 0}, r"num_slots must be >= 1, got 0"),
        ({"z_dim": 0}, r"z_dim must be >= 1"),
        ({"num_layers": -1}, r"num_layers must be >= 0"),
        ({"refinement_steps": -1}, r"refinement_steps must be >= 0"),
        ({"image_shape": (12, 12)}, r"image_shape must be \(C, H, W\)"),
        ({"image_shape": (3, 0, 12)}, r"image_shape \(C, H, W\) must be >= 1, got 0"),
        ({"decoder": "huge"}, r"no decoder named 'huge' is registered \(registered: big, iodine"),
        ({"likelihood": "poisson"}, r"no likelihood named 'poisson' is registered"),
        ({"prior": "vamp"}, r"no prior named 'vamp' is registered.*reversed\+\+"),
        ({"decoder": "big"}, r"decoder='big' only produces 96x96 images"),
    ],
)
def test_invalid_config_values(changes, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**changes)


def test_big_decoder_accepts_96x96():
    config = tiny_config(decoder="big", image_shape=(3, 96, 96))
    assert config.decoder == "big"


def test_lower_level_constructors_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown decoder 'huge'"):
        pe.nn.SpatialBroadcastDecoder(8, (12, 12), "huge")
    with pytest.raises(ValueError, match="only produces 96x96 images, got \\(64, 64\\)"):
        pe.nn.DeconvDecoder(8, (64, 64))
    with pytest.raises(ValueError, match="'\\+\\+' refinement prior needs order='reversed'"):
        pe.models.priors.HierarchicalPrior(8, 2, order="bottom_up", refine_with_lowest_prior=True)
    with pytest.raises(ValueError, match="no preset named 'objects_room' is registered.*tetro"):
        pe.presets.get("objects_room")


def test_official_option_errors():
    with pytest.raises(ValueError, match=r"unknown official Net options \['zsize'\]"):
        pe.EMORLConfig.from_official({"zsize": 32})
    with pytest.raises(ValueError, match="image_likelihood must be 'Gaussian' or 'GMM'"):
        pe.EMORLConfig.from_official({"image_likelihood": "gmm"})
    with pytest.raises(ValueError, match="exclude each other"):
        pe.EMORLConfig.from_official({"bottom_up_prior": True, "reverse_prior_plusplus": True})


def test_inference_option_errors():
    with pytest.raises(ValueError, match="refinement steps must be >= 0, got -1"):
        RefinementELBO(num_steps=-1)
    with pytest.raises(ValueError, match="need 3 step weights for I = 2, got 1"):
        RefinementELBO(num_steps=2, weights=[1.0])
    with pytest.raises(ValueError, match="unknown step weights 'uniform'"):
        RefinementELBO(num_steps=2, weights="uniform")
    with pytest.raises(ValueError, match=r"geco.convention must be one of .*, got 'nats'"):
        GECO(RefinementELBO(), -1.0, IMAGE_SHAPE, convention="nats")
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\)"):
        GECO(RefinementELBO(), -1.0, (12, 12))
    with pytest.raises(RuntimeError, match="needs a loss computed first"):
        GECO(RefinementELBO(), -1.0, IMAGE_SHAPE).update()
    with pytest.raises(ValueError, match="refinement steps must be >= 0"):
        RefinementCurriculum([(-1, -3)])


def test_model_needs_images_or_their_number(model_and_guide):
    model, _ = model_and_guide
    with pytest.raises(ValueError, match="num_images"):
        model()


# --------------------------------------------------------------------------------------------
# Official checkpoints of another configuration


@pytest.fixture(scope="module")
def tetrominoes_weights():
    fixture = torch.load(TETROMINOES_FIXTURE, weights_only=False)
    return fixture["state_dict"], pe.EMORLConfig.from_official(fixture["config"])


def test_official_weights_convert_for_their_own_configuration(tetrominoes_weights):
    state_dict, config = tetrominoes_weights
    model_state, guide_state, geco = official_io.convert_state_dict(state_dict, config)
    model, guide = pe.build(config)
    model.load_state_dict(model_state)
    guide.load_state_dict(guide_state)
    assert set(geco) == {"C_ema", "beta"}
    # DDP prefixes are accepted too.
    ddp = {f"module.{k}": v for k, v in state_dict.items()}
    assert official_io.convert_state_dict(ddp, config)[0].keys() == model_state.keys()


def test_tetrominoes_weights_into_a_multi_dsprites_config(tetrominoes_weights):
    state_dict, _ = tetrominoes_weights
    match = (
        r"does not match the configuration \(K=6, D=64, decoder='iodine', dual_gru=True\); "
        r"check z_size, image_decoder and use_DualGRU: .*"
        r"guide.initial_loc: checkpoint shape \(32,\) != \(64,\)"
    )
    with pytest.raises(ValueError, match=match):
        official_io.convert_state_dict(state_dict, pe.presets.multi_dsprites())
    with pytest.raises(ValueError, match=match):
        official_io.load_official({"model": state_dict}, pe.presets.multi_dsprites())


def test_mismatched_decoder_and_recurrence_are_named(tetrominoes_weights):
    state_dict, config = tetrominoes_weights
    with pytest.raises(ValueError, match=r"model.decoder.convs.0.weight: checkpoint shape"):
        official_io.convert_state_dict(state_dict, config.replace(decoder="iodine"))
    with pytest.raises(ValueError, match=r"missing from the checkpoint: \['model.decoder.convs.8"):
        official_io.convert_state_dict(state_dict, config.replace(decoder="iodine"))
    with pytest.raises(ValueError, match=r"keys this configuration does not have: .*gru.cell"):
        official_io.convert_state_dict(state_dict, config.replace(dual_gru=False))
    incomplete = {k: v for k, v in state_dict.items() if k != "hvae_networks.to_q.weight"}
    with pytest.raises(ValueError, match=r"missing from the checkpoint: \['guide.*to_q.weight'\]"):
        official_io.convert_state_dict(incomplete, config)


# --------------------------------------------------------------------------------------------
# Edge cases: empty batches, numpy integers, call-time step counts, config fields.


def test_empty_batch_gets_a_clear_value_error(model_and_guide):
    model, guide = model_and_guide
    with pytest.raises(ValueError, match="empty|at least one image"):
        RefinementELBO(num_steps=0).loss(model, guide, random_images()[:0])


def test_numpy_integer_number_of_slots_is_accepted(model_and_guide):
    model, guide = model_and_guide
    steps = RefinementELBO(num_steps=0).steps(model, guide, random_images(), num_slots=np.int64(4))
    assert steps[0].state.loc.shape[1] == 4


def test_negative_refinement_steps_at_call_time(model_and_guide):
    model, guide = model_and_guide
    with pytest.raises(ValueError, match=">= 0"):
        RefinementELBO(num_steps=1).steps(model, guide, random_images(), num_steps=-1)


def test_invalid_step_weights_in_the_config():
    with pytest.raises(ValueError, match="step_weights"):
        tiny_config(step_weights="uniform")


def test_float_images_into_a_double_model(model_and_guide):
    model, guide = model_and_guide
    images = random_images().to(torch.float32)
    if images.dtype == next(guide.parameters()).dtype:
        images = images.double()
    with pytest.raises(ValueError, match="convert one of them"):
        RefinementELBO(num_steps=0).loss(model, guide, images)


@pytest.mark.parametrize("changes", [{"log_scale": float("nan")}, {"z_dim": 2.5}])
def test_invalid_numeric_config_fields(changes):
    with pytest.raises(ValueError, match="log_scale|z_dim"):
        tiny_config(**changes)
