"""The Slot Attention baseline as a Pyro program: parameter counts, the loss against the official
formula, official weights, training through fit, reloading and decomposing."""

from __future__ import annotations

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.evaluation.protocol import evaluate_batch
from pyro_emorl.infer import FixedNoise, RefinementELBO
from pyro_emorl.io import load_for_inference
from pyro_emorl.io import official as official_io
from pyro_emorl.models.slot_attention import (
    SLOT_ATTENTION_LOG_SCALE,
    SlotAttentionGuide,
    nll_offset,
    official_loss,
)
from pyro_emorl.nn.parameterization import raw_to_scale
from pyro_emorl.sites import COMPONENTS_SITE, INITIAL_SITE, MASKS_SITE, latent_site
from tests.tiny import assert_close, default_dtype, num_threads, randomize_

IMAGE_SHAPE = (3, 12, 12)
K, D, B = 3, 8, 2


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


def tiny_config(**overrides: object) -> pe.SlotAttentionConfig:
    """The Tetrominoes Slot Attention recipe at 3x12x12, K=3, D=8."""
    config = pe.presets.slot_attention_tetrominoes(image_shape=IMAGE_SHAPE, num_slots=K, z_dim=D)
    return config.replace(**overrides) if overrides else config


def random_programs(config: pe.SlotAttentionConfig, seed: int = 0):
    with default_dtype(torch.float64):
        model, guide = pe.build(config)
    randomize_((model, guide), seed=seed)
    return model, guide


def images(batch: int = B, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *IMAGE_SHAPE), generator=generator, dtype=torch.float64)


def _trainable(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("preset", "count"),
    [
        ("slot_attention_tetrominoes", 419_236),
        ("slot_attention_multi_dsprites", 479_204),
        ("slot_attention_clevr6", 890_180),
    ],
)
def test_parameter_counts_equal_the_official_ones(preset, count):
    model, guide = pe.build(pe.presets.get(preset))
    assert isinstance(guide, SlotAttentionGuide)
    assert _trainable(model, guide) == count


def test_presets_are_the_official_slot_attention_configs():
    for name, shape, k, d, decoder in [
        ("slot_attention_tetrominoes", (3, 35, 35), 4, 32, "small"),
        ("slot_attention_multi_dsprites", (3, 64, 64), 6, 64, "small"),
        ("slot_attention_clevr6", (3, 96, 96), 7, 64, "big"),
    ]:
        config = pe.presets.get(name)
        assert (config.model, config.image_shape, config.num_slots) == ("slot_attention", shape, k)
        assert (config.z_dim, config.decoder, config.num_layers) == (d, decoder, 3)
        t = config.training
        assert (t.steps, t.batch_size, t.lr, t.clip_grad_norm) == (500_000, 64, 4e-4, None)
        assert (t.warmup_steps, t.lr_half_life, t.curriculum) == (10_000, 100_000, ((-1, 0),))
        assert config.refinement_steps == 0 and config.objective_settings().geco is None
        assert _roundtrip(config) == config


def _roundtrip(config: pe.SlotAttentionConfig) -> pe.ModelConfig:
    return pe.registry.config_from_dict(config.to_dict())


def _official_loss_by_hand(model, guide, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """What the official ``SlotAttention.forward`` computes, step by step, from the same blocks:
    encoder on [-1, 1] input, ``init = mu + sqrt(softplus(s) + 1e-5) * eps``, 3 iterations,
    decoder, log-softmax masks, ``sum((x01 - sum_k m mu)^2) / B``."""
    keys, values = guide.slot_attention.attention.keys_values(guide.encoder(x))
    slots = guide.initial_loc + raw_to_scale(guide.initial_raw_scale) * eps
    for _ in range(3):
        slots, _ = guide.slot_attention(slots, keys, values)
    rgb, mask_logits = model.decoder(slots)
    masks = F.log_softmax(mask_logits, dim=1)
    return ((x - (rgb * masks.exp()).sum(1)) ** 2).sum() / x.shape[0]


@pytest.mark.parametrize("log_scale", [SLOT_ATTENTION_LOG_SCALE, math.log(0.1)])
def test_loss_is_the_official_sse_up_to_constants(log_scale):
    """-ELBO (batch mean) = SSE / (2 sigma^2) / B + C H W (ln sigma + 1/2 ln 2 pi); with the
    presets' sigma = 1/sqrt(2) the loss and gradient are the official ones (+ C H W/2 ln pi)."""
    config = tiny_config(log_scale=log_scale)
    model, guide = random_programs(config)
    x = images()
    eps = torch.randn(B, K, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    elbo = RefinementELBO(num_steps=0, weights=config.objective_settings().weights)
    with FixedNoise({INITIAL_SITE: eps}):
        terms = elbo.steps(model, guide, x)
    loss = elbo.weighted_loss(terms)
    assert_close(terms[0].kl, torch.zeros(B, dtype=torch.float64), what="kl")

    params = [p for m in (model, guide) for p in m.parameters()]
    grads = torch.autograd.grad(loss, params)
    official = _official_loss_by_hand(model, guide, x, eps)
    official_grads = torch.autograd.grad(official, params, allow_unused=True)

    factor = 1 / (2 * math.exp(2 * log_scale))  # 1 for the presets' sigma
    offset = nll_offset(IMAGE_SHAPE, log_scale)
    if log_scale == SLOT_ATTENTION_LOG_SCALE:
        assert factor == pytest.approx(1, rel=1e-15)
        assert offset == pytest.approx(math.prod(IMAGE_SHAPE) * 0.5 * math.log(math.pi), rel=1e-14)
    assert_close(loss, factor * official + offset, rel=1e-12, what="loss")
    trace = terms[0].model_trace
    by_helper = official_loss(
        x, trace.nodes[COMPONENTS_SITE]["value"], trace.nodes[MASKS_SITE]["value"]
    )
    assert_close(by_helper, official, rel=1e-12, what="official_loss")
    for p, g, g_official in zip(params, grads, official_grads):
        expected = torch.zeros_like(p) if g_official is None else factor * g_official
        assert_close(g, expected, rel=1e-10, what="gradient")


def test_it_is_a_plain_pyro_program():
    """Pyro's own Trace_ELBO (Monte Carlo, summed over images) gives the same loss, so SVI works."""
    config = tiny_config()
    model, guide = random_programs(config)
    x = images()
    eps = torch.randn(B, K, D, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with FixedNoise({INITIAL_SITE: eps}):
        ours = RefinementELBO(num_steps=0, weights=(1.0,)).differentiable_loss(model, guide, x)
    with FixedNoise({INITIAL_SITE: eps}):
        pyros = pyro.infer.Trace_ELBO(max_plate_nesting=2).differentiable_loss(model, guide, x)
    assert_close(pyros / B, ours, rel=1e-12, what="Trace_ELBO")


def test_no_refinement_and_no_generation():
    model, guide = pe.build(tiny_config())
    x = images().float()
    with pytest.raises(ValueError, match="SlotAttentionGuide cannot refine"):
        pe.decompose(model, guide, x, num_steps=1)
    with pytest.raises(NotImplementedError, match="improper flat prior"):
        model(num_images=2)


@pytest.mark.parametrize(
    "changes",
    [
        {"refinement_steps": 1},
        {"training": {"curriculum": ((-1, 1),)}},
        {"num_layers": 0},
        {"training": {"noise_warmup_steps": 10}},
    ],
)
def test_config_refuses_what_slot_attention_cannot_do(changes):
    with pytest.raises(ValueError, match="Slot Attention .no refinement, no KL, no GECO. needs"):
        tiny_config(**changes)


def test_config_has_only_its_own_fields():
    assert pe.EMORLConfig().model == "emorl"
    data = tiny_config().to_dict()
    assert data["model"] == "slot_attention"
    for emorl_only in ("prior", "geco", "kl_beta", "step_weights", "dual_gru"):
        assert emorl_only not in data
    with pytest.raises(ValueError, match=r"unknown slot_attention configuration field.*\['geco'\]"):
        pe.SlotAttentionConfig.from_dict({**data, "geco": None})
    with pytest.raises(ValueError, match="a 'emorl' configuration is not a 'slot_attention' one"):
        pe.SlotAttentionConfig.from_dict(pe.presets.tetrominoes().to_dict())
    # Older checkpoints carry no "model": they are EfficientMORL.
    emorl = pe.presets.tetrominoes().to_dict()
    del emorl["model"]
    assert pe.registry.config_from_dict(emorl) == pe.presets.tetrominoes()


def _official_shapes(z: int, decoder: str) -> dict[str, tuple[int, ...]]:
    """The official ``SlotAttention`` state_dict, written out from its ``__init__``."""
    shapes: dict[str, tuple[int, ...]] = {
        "pos_embed_projection.weight": (64, 4),
        "pos_embed_projection.bias": (64,),
        "encoder_pt_2.0.weight": (64,),
        "encoder_pt_2.0.bias": (64,),
        "encoder_pt_2.1.weight": (64, 64),
        "encoder_pt_2.1.bias": (64,),
        "encoder_pt_2.3.weight": (64, 64),
        "encoder_pt_2.3.bias": (64,),
        "norm_slots.weight": (z,),
        "norm_slots.bias": (z,),
        "norm_pre_ff.weight": (z,),
        "norm_pre_ff.bias": (z,),
        "to_q.weight": (z, z),
        "to_k.weight": (z, 64),
        "to_v.weight": (z, 64),
        "mlp.0.weight": (128, z),
        "mlp.0.bias": (128,),
        "mlp.2.weight": (z, 128),
        "mlp.2.bias": (z,),
        "gru.weight_ih_l0": (3 * z, z),
        "gru.weight_hh_l0": (3 * z, z),
        "gru.bias_ih_l0": (3 * z,),
        "gru.bias_hh_l0": (3 * z,),
        "init_slots": (1, 2 * z),
        "image_decoder.pos_embed_projection.weight": (z, 4),
        "image_decoder.pos_embed_projection.bias": (z,),
    }
    for i, c_in in zip((0, 2, 4, 6), (3, 64, 64, 64)):
        shapes[f"encoder_pt_1.{i}.weight"] = (64, c_in, 5, 5)
        shapes[f"encoder_pt_1.{i}.bias"] = (64,)
    if decoder == "small":
        layers = [(z, 32, 5), (32, 32, 5), (32, 32, 5), (32, 4, 3)]
        for i, (c_in, c_out, k) in zip((0, 2, 4, 6), layers):
            shapes[f"image_decoder.decode.{i}.weight"] = (c_out, c_in, k, k)
            shapes[f"image_decoder.decode.{i}.bias"] = (c_out,)
    else:  # "big": ConvTranspose2d weights are [in, out, k, k]
        layers = [(z, 64, 5), (64, 64, 5), (64, 64, 5), (64, 64, 5), (64, 64, 5), (64, 4, 3)]
        for i, (c_in, c_out, k) in zip((0, 2, 4, 6, 8, 10), layers):
            shapes[f"image_decoder.decode.{i}.weight"] = (c_in, c_out, k, k)
            shapes[f"image_decoder.decode.{i}.bias"] = (c_out,)
    return shapes


@pytest.mark.parametrize(
    ("preset", "z", "decoder", "count"),
    [
        ("slot_attention_tetrominoes", 32, "small", 419_236),
        ("slot_attention_clevr6", 64, "big", 890_180),
    ],
)
def test_official_state_dict_loads(preset, z, decoder, count):
    shapes = _official_shapes(z, decoder)
    assert sum(math.prod(s) for s in shapes.values()) == count  # the list is complete
    generator = torch.Generator().manual_seed(0)
    official = {k: torch.randn(s, generator=generator) for k, s in shapes.items()}
    config = pe.presets.get(preset)
    wrapped = {"model": {f"module.{k}": v for k, v in official.items()}}  # a DDP checkpoint
    model, guide, geco = official_io.load_official(wrapped, config)
    assert geco == {}
    ours = {f"model.{k}": v for k, v in model.state_dict().items()}
    ours |= {f"guide.{k}": v for k, v in guide.state_dict().items()}
    used = set()
    for key, value in official.items():
        if key == "init_slots":
            torch.testing.assert_close(ours["guide.initial_loc"], value[0, :z], rtol=0, atol=0)
            torch.testing.assert_close(
                ours["guide.initial_raw_scale"], value[0, z:], rtol=0, atol=0
            )
            used |= {"guide.initial_loc", "guide.initial_raw_scale"}
            continue
        name = official_io._rename_slot_attention(key)
        assert name in ours, key
        torch.testing.assert_close(ours[name], value, rtol=0, atol=0)
        used.add(name)
    assert used == set(ours)  # every parameter of ours came from the checkpoint


def test_official_state_dict_mismatches_are_named():
    official = {
        k: torch.zeros(s) for k, s in _official_shapes(32, "small").items()
    }  # Tetrominoes weights
    with pytest.raises(ValueError, match="pass a Slot Attention configuration"):
        official_io.convert_state_dict(official, pe.presets.tetrominoes())
    with pytest.raises(ValueError, match="checkpoint shape"):
        official_io.convert_state_dict(official, pe.presets.slot_attention_multi_dsprites())


def test_trains_with_fit_reloads_and_decomposes(tmp_path):
    config = tiny_config(training={"steps": 2, "batch_size": 2, "warmup_steps": 1})
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(8, *IMAGE_SHAPE, generator=generator))
    options = train.RunOptions(
        out_dir=tmp_path, device="cpu", progress=False, tensorboard=False, figure_every=0
    )
    result = train.fit(config, data, options)
    assert result.step == 2 and result.skipped_steps == 0

    loaded = load_for_inference(result.checkpoint)
    assert loaded.config == config and isinstance(loaded.guide, SlotAttentionGuide)
    assert loaded.geco is None
    for trained, reloaded in ((result.model, loaded.model), (result.guide, loaded.guide)):
        for (name, a), b in zip(trained.state_dict().items(), reloaded.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)

    x = data.tensors[0][:3]
    with torch.no_grad():
        out = pe.decompose(loaded.model, loaded.guide, x, num_steps=loaded.config.refinement_steps)
    assert len(out.steps) == 1 and len(out.layers) == config.num_layers
    final = out.final
    assert final.masks.shape == (3, K, 1, *IMAGE_SHAPE[1:])
    assert final.components.shape == (3, K, *IMAGE_SHAPE)
    torch.testing.assert_close(final.masks.sum(1), torch.ones(3, 1, *IMAGE_SHAPE[1:]))
    torch.testing.assert_close(final.reconstruction, (final.masks * final.components).sum(1))
    torch.testing.assert_close(final.sample, final.loc, rtol=0, atol=0)  # a point mass
    assert torch.equal(final.kl, torch.zeros(3))
    torch.testing.assert_close(out.layers[-1].sample, final.sample, rtol=0, atol=0)
    assert torch.equal(out.layers[0].scale, torch.zeros(3, K, D))
    assert out.attention.shape == (config.num_layers, 3, K, 1, *IMAGE_SHAPE[1:])
    assert set(out.kl_per_layer) == {1, 2, 3}
    # The NLL is the official SSE plus the constant.
    sse = ((x - final.reconstruction) ** 2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(final.nll, sse + nll_offset(IMAGE_SHAPE))

    true_masks = torch.zeros(3, 2, 1, *IMAGE_SHAPE[1:])
    true_masks[:, 0, :, :, :6] = 1
    true_masks[:, 1, :, :, 6:] = 1
    scores = evaluate_batch(loaded.model, loaded.guide, x, true_masks, num_steps=0)
    assert scores["fg_ari"].shape == (3,) and (scores["kl"] == 0).all()


def test_slot_site_names_match_the_library():
    model, guide = pe.build(tiny_config())
    trace = pyro.poutine.trace(guide).get_trace(images().float())
    names = [
        n for n, s in trace.nodes.items() if s["type"] == "sample" and n not in ("images", "slots")
    ]
    assert names == [INITIAL_SITE] + [latent_site(layer) for layer in (1, 2, 3)]
    assert trace.nodes[INITIAL_SITE]["infer"]["is_auxiliary"]
