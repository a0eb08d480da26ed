"""IODINE's TF1-original options (no fixture pins them: each is checked against an independent
computation) and its programs in the library: configuration, registration, decomposition,
generation."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as td

import pyro_emorl as pe
from pyro_emorl.infer import FixedNoise, build_objective
from pyro_emorl.models.iodine import (
    ORIGINAL_PRIOR_SCALE,
    BroadcastDecoder,
    IODINEConfig,
    PixelMixtureLogistic,
    SonnetLSTMCell,
    iodine_step_weights,
)
from pyro_emorl.models.iodine.networks import cosine_coordinates, original_init_, same_padding
from pyro_emorl.models.iodine.programs import MASK_LOGITS_SITE
from pyro_emorl.sites import OBSERVATION_SITE, latent_site
from tests.tiny import assert_close, default_dtype, num_threads, randomize_

IMAGE_SHAPE = (3, 10, 10)
B, K, D = 2, 3, 4


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


def original_config(**overrides: object) -> IODINEConfig:
    """The original's Multi-dSprites architecture at 3x10x10, K=3, D=4, I=2, small widths."""
    config = pe.presets.get(
        "iodine_multi_dsprites",
        image_shape=IMAGE_SHAPE,
        num_slots=K,
        z_dim=D,
        refinement_steps=2,
        decoder_options={"architecture": "original", "channels": 6, "kernel": 3},
        refine_channels=(5, 5),
        refine_mlp=(7,),
        lstm_size=6,
        training={"curriculum": ((-1, 2),)},
    )
    return config.replace(**overrides) if overrides else config


def port_config(**overrides: object) -> IODINEConfig:
    config = IODINEConfig(
        image_shape=IMAGE_SHAPE,
        num_slots=K,
        z_dim=D,
        refinement_steps=2,
        decoder_options={"channels": 6},
        refine_channels=(5, 5),
        refine_mlp=(7,),
        lstm_size=6,
    ).replace(training={"curriculum": ((-1, 2),)})
    return config.replace(**overrides) if overrides else config


def programs(config: IODINEConfig, seed: int = 0):
    with default_dtype(torch.float64):
        model, guide = pe.build(config)
    randomize_((model, guide), seed=seed)
    return model, guide


def images(seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((B, *IMAGE_SHAPE), generator=generator, dtype=torch.float64)


def noise(steps: int, seed: int = 2) -> dict[str, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    eps = [torch.randn(B, K, D, generator=generator, dtype=torch.float64) for _ in range(steps)]
    return {latent_site(1): eps}


# -- the original's pieces against independent computations ----------------------------------


def logistic_log_density(x, loc, scale):
    """log Logistic(x; loc, scale) from torch.distributions (sigmoid-transformed uniform)."""
    base = td.Uniform(torch.zeros_like(loc), torch.ones_like(loc))
    transforms = [td.SigmoidTransform().inv, td.AffineTransform(loc, scale)]
    return td.TransformedDistribution(base, transforms).log_prob(x)


def test_logistic_mixture_is_one_mixture_per_pixel_over_joint_channels():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(B, K, 1, 5, 6, generator=generator, dtype=torch.float64)
    locs = torch.rand(B, K, 3, 5, 6, generator=generator, dtype=torch.float64)
    x = torch.rand(B, 1, 3, 5, 6, generator=generator, dtype=torch.float64)
    scale = torch.tensor(0.03, dtype=torch.float64)
    distribution = PixelMixtureLogistic(logits, locs, scale)
    assert distribution.batch_shape == (B, 1) and distribution.event_shape == (3, 5, 6)
    joint = logistic_log_density(x, locs, scale).sum(2, keepdim=True)  # product over channels
    expected = torch.logsumexp(F.log_softmax(logits, 1) + joint, 1).sum((1, 2, 3))
    assert_close(distribution.log_prob(x), expected[:, None], rel=1e-10, what="log_prob")
    sample = distribution.sample((4,))
    assert sample.shape == (4, B, 1, 3, 5, 6) and torch.isfinite(sample).all()


def test_sonnet_lstm_is_torch_lstm_with_forget_bias_one():
    """Sonnet's cell (gates i, j, f, o on [x, h], one bias, sigmoid(f + 1)) equals torch's cell
    (gates i, f, g, o, two biases) with the weights reordered and 1 added to the forget bias."""
    torch.manual_seed(0)
    cell = SonnetLSTMCell(5, 3).double()
    reference = torch.nn.LSTMCell(5, 3).double()
    i, j, f, o = cell.w_gates.detach().T.chunk(4)
    bi, bj, bf, bo = cell.b_gates.detach().chunk(4)
    with torch.no_grad():
        weight = torch.cat([i, f, j, o])
        reference.weight_ih.copy_(weight[:, :5])
        reference.weight_hh.copy_(weight[:, 5:])
        reference.bias_ih.copy_(torch.cat([bi, bf + 1.0, bj, bo]))
        reference.bias_hh.zero_()
    x = torch.randn(4, 5, dtype=torch.float64)
    state = (torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64))
    for got, want in zip(cell(x, state), reference(x, state)):
        assert_close(got, want, rel=1e-14, what="lstm")
    assert sum(p.numel() for p in cell.parameters()) == (5 + 3) * 12 + 12


@pytest.mark.parametrize(
    ("size", "kernel", "padding"),
    [(64, 5, (1, 2)), (35, 5, (2, 2)), (18, 5, (1, 2)), (128, 3, (0, 1)), (35, 3, (1, 1))],
)
def test_same_padding_is_tensorflows(size, kernel, padding):
    """TF "SAME": output ceil(n / 2), padding total (out - 1) * 2 + k - n, the odd pixel after."""
    assert same_padding(size, kernel, 2) == padding
    assert (size + sum(padding) - kernel) // 2 + 1 == -(-size // 2)  # output ceil(n / 2)


def test_cosine_coordinates_are_the_originals():
    like = torch.zeros((), dtype=torch.float64)
    coords = cosine_coordinates(4, 5, like)
    assert coords.shape == (8, 4, 5)
    u = torch.linspace(0, math.pi, 5, dtype=torch.float64)  # along W
    v = torch.linspace(0, math.pi, 4, dtype=torch.float64)  # along H
    for fx in range(3):
        for fy in range(3):
            if fx == fy == 0:
                continue
            expected = torch.cos(fx * u)[None, :] * torch.cos(fy * v)[:, None]
            assert_close(coords[fx * 3 + fy - 1], expected, rel=1e-14, what=f"{fx},{fy}")


def test_original_decoder_by_hand():
    """[z, 5.0] tiled, then coordinates along H and along W, SAME convs, mask channel first."""
    torch.manual_seed(1)
    decoder = BroadcastDecoder(D, IMAGE_SHAPE, "original", channels=6, kernel=3).double()
    randomize_(decoder)
    z = torch.randn(B, K, D, dtype=torch.float64)
    rgb, logits = decoder(z)
    h, w = IMAGE_SHAPE[1:]
    flat = torch.cat([z.reshape(-1, D), torch.full((B * K, 1), 5.0, dtype=torch.float64)], 1)
    rows = torch.linspace(-1, 1, h, dtype=torch.float64)[:, None].expand(h, w)
    cols = torch.linspace(-1, 1, w, dtype=torch.float64)[None, :].expand(h, w)
    net = torch.cat(
        [
            flat[:, :, None, None].expand(-1, -1, h, w),
            torch.stack([rows, cols]).expand(B * K, -1, -1, -1),
        ],
        1,
    )
    for conv in decoder.hidden:
        net = F.elu(F.conv2d(net, conv.weight, conv.bias, padding=1))
    out = F.conv2d(net, decoder.output.weight, decoder.output.bias, padding=1)
    assert_close(logits, out[:, :1].reshape(B, K, 1, h, w), rel=1e-13, what="mask logits")
    assert_close(rgb, out[:, 1:].reshape(B, K, 3, h, w), rel=1e-13, what="rgb (no activation)")


class Capture:
    def __init__(self, guide) -> None:
        self.steps, self.inputs = [], []
        original = guide.decoded_step

        def decoded_step(state, step):
            self.steps.append((state, step))
            return original(state, step)

        guide.decoded_step = decoded_step
        guide.network.register_forward_hook(lambda m, args, out: self.inputs.append(args[:2]))


def test_original_refinement_inputs_by_hand():
    """Every spatial and flat input of the original, recomputed from the trace with autograd and
    torch.distributions (24 channels with cosine coordinates, sorted by name)."""
    config = original_config()
    model, guide = programs(config)
    original_init_(guide.inputs)  # LayerNorms at gamma 1, beta 0, as written out below
    capture = Capture(guide)
    x = images()
    elbo, _ = build_objective(config.objective_settings())
    with FixedNoise(noise(2)):
        elbo.steps(model, guide, x, num_steps=1)
    (state, step), (spatial, flat) = capture.steps[0], capture.inputs[0]
    nodes = step.model_trace.nodes
    logits = nodes[MASK_LOGITS_SITE]["value"]
    locs = nodes[OBSERVATION_SITE]["fn"].locs
    d_logits, d_locs, d_loc, d_raw = torch.autograd.grad(
        step.objective, [logits, locs, state.loc, state.raw_variance], retain_graph=True
    )
    h, w = IMAGE_SHAPE[1:]
    joint = logistic_log_density(x[:, None], locs, torch.tensor(0.03, dtype=torch.float64)).sum(
        2, keepdim=True
    )
    log_p = torch.logsumexp(F.log_softmax(logits, 1) + joint, 1, keepdim=True)
    others = []
    for k in range(K):
        keep = [j for j in range(K) if j != k]
        others.append(torch.logsumexp(F.log_softmax(logits[:, keep], 1) + joint[:, keep], 1))
    counterfactual = log_p - torch.stack(others, 1)
    density = joint.exp()

    def ln(v):  # Sonnet's LayerNorm at its initialisation (gamma 1, beta 0)
        return F.layer_norm(v, v.shape[-3:], eps=1e-5)

    expected = torch.cat(
        [
            torch.full((B, K, 1, h, w), 0.5, dtype=torch.float64),
            locs,
            cosine_coordinates(h, w, x).expand(B, K, -1, -1, -1),
            ln(counterfactual),
            ln(d_locs),
            ln(d_logits),
            x[:, None].expand(B, K, -1, -1, -1),  # each slot its own image
            ln(log_p).expand(B, K, -1, -1, -1),
            logits,
            density / (density.sum(1, keepdim=True) + 1e-6),
            F.softmax(logits, 1),
        ],
        2,
    ).flatten(0, 1)
    assert spatial.shape == (B * K, 24, h, w)
    assert_close(spatial, expected, rel=1e-10, what="spatial inputs")
    d_params = torch.cat([d_loc, d_raw], -1)
    d_params = F.layer_norm(d_params, d_params.shape[-1:], eps=1e-5)
    zp = torch.cat([state.loc, state.raw_variance], -1)
    expected_flat = torch.cat([d_params, torch.full((B, K, 1), 0.5).double(), zp], -1)
    assert_close(flat, expected_flat.flatten(0, 1), rel=1e-10, what="flat inputs")


def test_original_prior_weights_and_loss():
    """KL to N(0, ln 2), weights linspace(0, 1, I + 1), loss = sum_r w_r mean(nll + kl)."""
    config = original_config()
    assert config.objective_settings().weights == (0.0, 0.5, 1.0)
    assert iodine_step_weights(5, "original") == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert iodine_step_weights(4, "port") == (0.2, 0.4, 0.6, 0.8, 1.0)
    model, guide = programs(config)
    elbo, geco = build_objective(config.objective_settings())
    assert geco is None
    with FixedNoise(noise(3)):
        terms = elbo.steps(model, guide, images(), num_steps=2)
    for term in terms:
        q = term.guide_trace.nodes[latent_site(1)]["fn"].base_dist
        prior = td.Normal(0.0, torch.tensor(math.log(2), dtype=torch.float64).sqrt())
        kl = td.kl_divergence(td.Normal(q.loc, q.scale), prior).sum((-2, -1))
        assert_close(term.kl, kl, rel=1e-12, what="kl")
    loss = elbo.weighted_loss(terms)
    by_hand = sum(w * (t.nll + t.kl).mean() for w, t in zip((0.0, 0.5, 1.0), terms))
    assert_close(loss, by_hand, rel=1e-12, what="loss")
    assert ORIGINAL_PRIOR_SCALE == pytest.approx(math.sqrt(math.log(2)), rel=1e-15)


@pytest.mark.parametrize("make", [port_config, original_config])
def test_gradients_flow_through_every_refinement_step(make):
    """No stop-gradient between steps: the last step's objective reaches the initial posterior
    and the decoder through the refinement inputs."""
    config = make()
    model, guide = programs(config)
    elbo, _ = build_objective(config.objective_settings())
    with FixedNoise(noise(3)):
        terms = elbo.steps(model, guide, images(), num_steps=2)
    last = elbo.objective(terms[-1])
    grads = torch.autograd.grad(last, [guide.initial_params, *guide.network.encoder.parameters()])
    assert all(g.abs().sum() > 0 for g in grads)


def test_port_image_tiling_is_the_ports_bug():
    """Off (default): slot (b, k) sees image b. On: image (b K + k) mod B, as the port."""
    x = images()
    _, guide = programs(port_config())
    assert torch.equal(guide.slot_images(x, K), x[:, None].expand(B, K, *IMAGE_SHAPE))
    _, tiled = programs(port_config(port_image_tiling=True))
    bad = tiled.slot_images(x, K)
    for b in range(B):
        for k in range(K):
            assert torch.equal(bad[b, k], x[(b * K + k) % B])


# -- the programs in the library --------------------------------------------------------------


@pytest.mark.parametrize("make", [port_config, original_config])
def test_decompose_generate_and_reload(make):
    config = make()
    model, guide = programs(config)
    with torch.no_grad():
        decomposition = pe.decompose(model, guide, images(), num_steps=3)
        generated = model(num_images=2)
    assert len(decomposition.steps) == 4
    assert_close(decomposition.final.masks.sum(1), torch.ones(B, 1, *IMAGE_SHAPE[1:]).double())
    assert generated.shape == (2, *IMAGE_SHAPE)
    assert IODINEConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    rebuilt, reguide = pe.build(config)
    rebuilt.load_state_dict(model.state_dict())
    reguide.load_state_dict(guide.state_dict())


def test_registered_names_and_reuse():
    names = {e.name for e in pe.registered("decoder")} | {e.name for e in pe.registered("model")}
    assert {"iodine", "iodine_broadcast"} <= names  # EfficientMORL's "iodine" decoder untouched
    assert "logistic_mixture" in {e.name for e in pe.registered("likelihood")}
    assert {"iodine_tetrominoes", "iodine_multi_dsprites", "iodine_clevr6"} <= set(
        pe.presets.names()
    )
    assert pe.presets.data_of("iodine_tetrominoes") == "tetrominoes"
    # The components serve other families too.
    emorl = pe.EMORLConfig(
        image_shape=IMAGE_SHAPE,
        num_slots=K,
        z_dim=D,
        num_layers=1,
        decoder="iodine_broadcast",
        decoder_options={"channels": 4},
        likelihood="logistic_mixture",
        log_scale=math.log(0.03),
    )
    model, guide = pe.build(emorl)
    with torch.no_grad():
        pe.decompose(model, guide, images().float(), num_steps=1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"training": {"curriculum": ((-1, 3), (10, 1))}}, "single I"),
        ({"coordinates": "cos"}, "refinement_inputs='original'"),
        ({"step_weights": "original", "training": {"curriculum": ((-1, 0),)}}, "I >= 1"),
        ({"step_weights": (1.0, 1.0)}, "need 3 step weights"),
        ({"lstm": "gru"}, "lstm must be one of"),
        ({"refine_padding": "valid"}, "refine_padding must be one of"),
    ],
)
def test_config_refuses(changes, message):
    with pytest.raises(ValueError, match=message):
        port_config(**changes)


def test_refinement_needs_a_mixture_likelihood():
    model, guide = pe.build(port_config(likelihood="gaussian"))
    with pytest.raises(ValueError, match="pixel-wise mixture likelihood"):
        pe.decompose(model, guide, images().float(), num_steps=1)


def test_bfloat16_convolutions():
    """``--precision bfloat16`` reaches the decoder's and the refinement encoder's convolutions;
    the rest stays float32."""
    from pyro_emorl.nn.precision import set_conv_dtype

    config = original_config()
    model, guide = programs(config)
    model, guide = model.float(), guide.float()
    x = images().float()
    torch.manual_seed(0)
    with torch.no_grad():
        reference = pe.decompose(model, guide, x, num_steps=1)
    assert set_conv_dtype(model, torch.bfloat16) + set_conv_dtype(guide, torch.bfloat16) == 2
    torch.manual_seed(0)
    with torch.no_grad():
        low = pe.decompose(model, guide, x, num_steps=1)
    assert low.final.masks.dtype == torch.float32
    assert (low.final.masks - reference.final.masks).abs().max() < 0.1
