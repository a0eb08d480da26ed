"""The building blocks against plain computations written out here (float64), and the schedule,
step weights and parameter counts against the specification's numbers."""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

import pyro_emorl as pe
from pyro_emorl.infer import RefinementCurriculum, official_lr_factor, step_weights
from pyro_emorl.models.likelihoods import GaussianLikelihood, MixtureLikelihood, PixelMixtureNormal
from pyro_emorl.nn import DualGRUCell, SpatialBroadcastDecoder, raw_to_scale
from tests.tiny import (
    IMAGE_SHAPE,
    B,
    D,
    K,
    assert_close,
    default_dtype,
    gaussian_log_density,
    num_threads,
    randomize_,
)

C, H, W = IMAGE_SHAPE


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with num_threads(1):
        yield


def _grid(height: int, width: int) -> torch.Tensor:
    """The spec's fixed position grid (section 2.1), ``[4, H, W]``: channels
    ``[1 - row, row, col, 1 - col]`` with row, col running from 0 to 1 inclusive."""
    row = torch.tensor([i / (height - 1) for i in range(height)], dtype=torch.float64)
    col = torch.tensor([j / (width - 1) for j in range(width)], dtype=torch.float64)
    row, col = row[:, None].expand(height, width), col[None, :].expand(height, width)
    return torch.stack([1 - row, row, col, 1 - col])


def _plain_broadcast_decoder(decoder: SpatialBroadcastDecoder, z: torch.Tensor, kind: str):
    """``convs(tile(z) + projected positions)`` with every convolution applied one by one."""
    margin, padding, activation = {"iodine": (10, 0, F.elu), "small": (6, 1, F.relu)}[kind]
    hg, wg = H + margin, W + margin
    proj = decoder.position_projection
    positions = torch.einsum("chw,dc->dhw", _grid(hg, wg), proj.weight) + proj.bias[:, None, None]
    flat = z.reshape(-1, z.shape[-1])
    h = flat[:, :, None, None].expand(-1, -1, hg, wg) + positions
    convs = [m for m in decoder.convs if isinstance(m, torch.nn.Conv2d)]
    for i, conv in enumerate(convs):
        h = F.conv2d(h, conv.weight, conv.bias, stride=1, padding=padding)
        if i < len(convs) - 1:
            h = activation(h)
    h = h.reshape(*z.shape[:-1], 4, H, W)
    return torch.sigmoid(h[..., :3, :, :]), h[..., 3:, :, :]


@pytest.mark.parametrize("kind", ["iodine", "small"])
def test_spatial_broadcast_decoder_equals_the_plain_computation(kind):
    decoder = SpatialBroadcastDecoder(D, (H, W), kind).double()
    randomize_(decoder, seed=3)
    z = torch.randn(B, K, D, dtype=torch.float64, requires_grad=True)
    rgb, logits = decoder(z)
    rgb_ref, logits_ref = _plain_broadcast_decoder(decoder, z, kind)
    assert rgb.shape == (B, K, C, H, W) and logits.shape == (B, K, 1, H, W)
    assert_close(rgb, rgb_ref, what="rgb")
    assert_close(logits, logits_ref, what="mask logits")

    # Gradients w.r.t. the latents and every parameter, for a generic scalar of both outputs.
    weights = torch.randn(B, K, 4, H, W, dtype=torch.float64)
    inputs = [z, *decoder.parameters()]

    def scalar(rgb, logits):
        return (torch.cat([rgb, logits], dim=-3) * weights).sum()

    grads = torch.autograd.grad(scalar(rgb, logits), inputs)
    grads_ref = torch.autograd.grad(scalar(rgb_ref, logits_ref), inputs)
    for (name, _), g, g_ref in zip([("z", z), *decoder.named_parameters()], grads, grads_ref):
        assert_close(g, g_ref, what=f"gradient of {name}")


def test_decoder_is_not_nearly_constant_after_randomisation():
    """Guard for the test above: the broadcast decoder output must vary over pixels and slots."""
    decoder = SpatialBroadcastDecoder(D, (H, W), "small").double()
    randomize_(decoder, seed=3)
    rgb, logits = decoder(torch.randn(B, K, D, dtype=torch.float64))
    assert rgb.std() > 1e-2 and logits.std() > 1e-1


def _torch_gru(weight_ih, weight_hh, bias_ih, bias_hh) -> torch.nn.GRUCell:
    d = weight_hh.shape[1]
    cell = torch.nn.GRUCell(weight_ih.shape[1], d).double()
    with torch.no_grad():
        cell.weight_ih.copy_(weight_ih)
        cell.weight_hh.copy_(weight_hh)
        cell.bias_ih.copy_(bias_ih)
        cell.bias_hh.copy_(bias_hh)
    return cell


def test_dual_gru_equals_two_torch_gru_cells():
    d = D
    gru = DualGRUCell(d, d).double()
    randomize_(gru, seed=4)
    cells = []
    for s in (1, 2):
        # The official layout: bias_ih / bias_hh rows [r1, z1, r2, z2], bias_in / bias_hn [n1, n2].
        rz = slice(2 * d * (s - 1), 2 * d * s)
        n = slice(d * (s - 1), d * s)
        cells.append(
            _torch_gru(
                torch.cat([getattr(gru, f"weight_ih_{s}"), getattr(gru, f"weight_in_{s}")]),
                torch.cat([getattr(gru, f"weight_hh_{s}"), getattr(gru, f"weight_hn_{s}")]),
                torch.cat([gru.bias_ih[rz], gru.bias_in[n]]),
                torch.cat([gru.bias_hh[rz], gru.bias_hn[n]]),
            )
        )
    update, loc, raw = torch.randn(3, B, K, d, dtype=torch.float64)
    new_loc, new_raw = gru(update, loc, raw)
    flat = update.reshape(-1, d)
    assert_close(new_loc, cells[0](flat, loc.reshape(-1, d)).reshape(B, K, d), what="loc stream")
    assert_close(new_raw, cells[1](flat, raw.reshape(-1, d)).reshape(B, K, d), what="raw stream")


def test_dual_gru_initialises_every_parameter_from_a_standard_normal():
    gru = DualGRUCell(64, 64)
    values = torch.cat([p.detach().reshape(-1) for p in gru.parameters()])
    assert values.numel() == 12 * 64**2 + 12 * 64  # spec section 2.6: 49,920 for D = 64
    assert abs(float(values.mean())) < 0.02 and abs(float(values.std()) - 1) < 0.02


def _mixture_inputs(seed: int = 5):
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(B, K, 1, H, W, generator=generator, dtype=torch.float64)
    locs = torch.rand(B, K, C, H, W, generator=generator, dtype=torch.float64)
    x = torch.rand(B, 1, C, H, W, generator=generator, dtype=torch.float64)
    return logits, locs, x


def test_pixel_mixture_log_prob_equals_mixture_same_family_per_channel():
    logits, locs, x = _mixture_inputs()
    scale = torch.tensor(0.1, dtype=torch.float64)
    ours = PixelMixtureNormal(logits, locs, scale)
    # K must be the rightmost batch dim of both parts (PYRO_NOTES section 2).
    mix = dist.Categorical(logits=logits.movedim(-4, -1).unsqueeze(-5).expand(B, 1, C, H, W, K))
    comp = dist.Normal(locs.movedim(-4, -1).unsqueeze(-5), scale)
    reference = dist.MixtureSameFamily(mix, comp).to_event(3)
    assert ours.batch_shape == reference.batch_shape == (B, 1)
    assert ours.event_shape == reference.event_shape == (C, H, W)
    assert_close(ours.log_prob(x), reference.log_prob(x), what="log_prob")

    # And per element against the formula log sum_k m_k N(x_c; mu_kc, sigma).
    weights = torch.softmax(logits, dim=1)
    density = (weights * gaussian_log_density(x, locs, 0.1).exp()).sum(1, keepdim=True)
    assert_close(ours.log_prob(x), density.log().sum((-3, -2, -1)), what="formula")


def test_mixture_likelihood_builds_the_pixel_mixture():
    logits, locs, x = _mixture_inputs()
    with default_dtype(torch.float64):  # ln sigma is a buffer made from a Python float
        d = MixtureLikelihood(math.log(0.2))(locs, logits)
    weights = torch.softmax(logits, dim=1)
    density = (weights * gaussian_log_density(x, locs, 0.2).exp()).sum(1, keepdim=True)
    assert_close(d.log_prob(x), density.log().sum((-3, -2, -1)))


def test_pixel_mixture_sample_shapes_and_component_frequencies():
    logits, locs, _ = _mixture_inputs()
    d = PixelMixtureNormal(logits, locs, torch.tensor(0.1, dtype=torch.float64))
    assert d.sample().shape == (B, 1, C, H, W)
    assert d.sample((4,)).shape == (4, B, 1, C, H, W)
    assert d.expand((3, B, 1)).sample().shape == (3, B, 1, C, H, W)

    # Two well-separated components with weights 0.25 / 0.75 and a tiny scale: every value is
    # one of the two means, chosen independently per pixel *and channel*.
    n = 4000
    two_logits = torch.log(torch.tensor([0.25, 0.75], dtype=torch.float64)).view(1, 2, 1, 1, 1)
    two_logits = two_logits.expand(1, 2, 1, 1, n).contiguous()
    two_locs = torch.tensor([0.0, 1.0], dtype=torch.float64).view(1, 2, 1, 1, 1)
    two_locs = two_locs.expand(1, 2, C, 1, n).contiguous()
    sample = PixelMixtureNormal(two_logits, two_locs, torch.tensor(1e-6)).sample()
    assert sample.shape == (1, 1, C, 1, n)
    near_one = (sample - 1).abs() < 1e-4
    assert bool((near_one | (sample.abs() < 1e-4)).all())
    assert abs(float(near_one.double().mean()) - 0.75) < 0.02  # sd of the mean: 0.004
    # Channels choose their component independently: not all channels agree everywhere.
    assert bool((near_one[:, :, 0] != near_one[:, :, 1]).any())


@pytest.mark.parametrize("log_scale", [math.log(0.1), math.log(0.3)])
def test_gaussian_likelihood_is_a_normal_density_of_the_mask_weighted_mean(log_scale):
    logits, locs, x = _mixture_inputs()
    with default_dtype(torch.float64):
        d = GaussianLikelihood(log_scale)(locs, logits)
    mean = (torch.softmax(logits, dim=1) * locs).sum(1, keepdim=True)
    expected = gaussian_log_density(x, mean, math.exp(log_scale)).sum((-3, -2, -1))
    assert d.batch_shape == (B, 1) and d.event_shape == (C, H, W)
    assert_close(d.log_prob(x), expected)
    assert_close(d.mean, mean)


def test_raw_to_scale_is_the_official_parameterisation():
    raw = torch.tensor(
        [-50.0, -10.0, -1.0, 0.0, 0.5, 1.0, 10.0, 79.0, 80.0, 81.0, 1e4], dtype=torch.float64
    )
    expected = torch.sqrt(torch.log(1 + torch.exp(torch.clamp(raw, max=80.0))) + 1e-5)
    assert_close(raw_to_scale(raw), expected, rel=1e-14)
    # Hand values: the official init s0 = 1 gives 1.14598 (spec section 2.4), the floor is
    # sqrt(1e-5), and raw values above 80 are clamped.
    assert abs(float(raw_to_scale(torch.tensor(1.0, dtype=torch.float64))) - 1.14598) < 1e-5
    assert abs(float(raw_to_scale(torch.tensor(-1e3, dtype=torch.float64))) - 1e-5**0.5) < 1e-12
    assert raw_to_scale(torch.tensor(1e4)) == raw_to_scale(torch.tensor(80.0))
    # No gradient flows through the clamp.
    r = torch.tensor([100.0, 0.0], requires_grad=True)
    (grad,) = torch.autograd.grad(raw_to_scale(r).sum(), r)
    assert grad[0] == 0 and grad[1] > 0


@pytest.mark.parametrize(
    ("step", "factor"),
    [
        (0, 0.0),  # spec section 6: lr 0 at s = 0,
        (5_000, 0.5),  # linear warm-up 4e-4 * s / 10000,
        (10_000, 1.0),
        (10_001, 1.0),  # the full rate right after the warm-up,
        (20_000, 0.5**0.1),  # then 0.5 ** ((s - 10000) / 100000)
        (100_000, 2.14e-4 / 4e-4),  # "2.14e-4 at 100K"
        (110_000, 0.5),
        (210_000, 0.25),
    ],
)
def test_official_lr_factor(step, factor):
    tolerance = 2e-3 if step == 100_000 else 1e-12  # the spec quotes 3 digits there
    assert abs(official_lr_factor(step) - factor) <= tolerance


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        # spec section 7.4: I = 3 always for Tetrominoes, 3 -> 1 at 100K (Multi-dSprites, CLEVR6),
        # 3 -> 2 at 100K (CLEVR6 at 128x128, ClevrTex).
        ("tetrominoes", {0: 3, 99_999: 3, 100_000: 3, 200_000: 3}),
        ("multi_dsprites", {0: 3, 99_999: 3, 100_000: 1, 300_000: 1}),
        ("clevr6", {0: 3, 99_999: 3, 100_000: 1, 300_000: 1}),
        ("clevr6_128", {0: 3, 99_999: 3, 100_000: 2, 300_000: 2}),
        ("clevrtex", {0: 3, 99_999: 3, 100_000: 2, 300_000: 2}),
    ],
)
def test_refinement_curriculum_of_the_presets(preset, expected):
    curriculum = RefinementCurriculum(pe.presets.get(preset).training.curriculum)
    assert {step: curriculum(step) for step in expected} == expected


def test_refinement_curriculum_rules():
    # The last pair whose first step is <= step wins, whatever the order given.
    curriculum = RefinementCurriculum([(100, 1), (-1, 3), (50, 2)])
    assert [curriculum(s) for s in (0, 49, 50, 99, 100, 10**6)] == [3, 3, 2, 2, 1, 1]
    with pytest.raises(ValueError, match="does not cover step"):
        RefinementCurriculum([(10, 1)])(5)
    with pytest.raises(ValueError, match="at least one"):
        RefinementCurriculum([])


@pytest.mark.parametrize(
    ("num_steps", "official", "paper"),
    [
        # spec section 4.2f and paper Eq. 8
        (3, [1.5, 1.25, 1.0, 0.75], [1.0, 0.75, 0.5, 0.25]),
        (2, [5 / 3, 4 / 3, 1.0], [1.0, 2 / 3, 1 / 3]),
        (1, [2.0, 1.5], [1.0, 0.5]),
        (0, [3.0], [1.0]),
    ],
)
def test_step_weights(num_steps, official, paper):
    assert step_weights(num_steps, "official") == pytest.approx(official, rel=1e-15)
    assert step_weights(num_steps) == pytest.approx(official, rel=1e-15)
    assert step_weights(num_steps, "paper") == pytest.approx(paper, rel=1e-15)
    explicit = [0.1 * (r + 1) for r in range(num_steps + 1)]
    assert step_weights(num_steps, explicit) == explicit


def _trainable(modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("preset", "count"),
    [("tetrominoes", 467_236), ("multi_dsprites", 666_500), ("clevr6", 666_500)],
)
def test_parameter_counts_equal_the_official_ones(preset, count):
    model, guide = pe.build(pe.presets.get(preset))
    assert _trainable((model, guide)) == count


def test_parameter_counts_per_block():
    """Spec section 12, Tetrominoes column: a few blocks on their own."""
    model, guide = pe.build(pe.presets.tetrominoes())
    assert _trainable([model.decoder]) == 78_212
    assert _trainable([model.prior]) == 12_480
    assert _trainable([guide.refiner]) == 29_088
    assert _trainable([guide.layer.recurrence]) == 12_672
    assert _trainable([guide.encoder.convs]) == 312_256


def test_truncated_gradients_keep_the_samples_and_cut_the_earlier_layers_path() -> None:
    """``truncate_gradients``: the same samples, and the last layer's output no longer depends
    (for the gradient) on what came before it; without it, it does."""
    config = pe.presets.tetrominoes(num_layers=2, z_dim=8)
    images = torch.rand(2, 3, 35, 35)
    outputs = {}
    for truncate in (False, True):
        torch.manual_seed(0)
        _, guide = pe.build(config.replace(truncate_gradients=truncate))
        torch.manual_seed(1)
        posterior = guide(images)
        (grad,) = torch.autograd.grad(posterior.loc.sum(), guide.initial_loc, allow_unused=True)
        outputs[truncate] = posterior.loc.detach(), grad
    assert torch.equal(outputs[False][0], outputs[True][0])
    assert outputs[False][1] is not None and outputs[False][1].abs().sum() > 0
    assert outputs[True][1] is None  # z_0's parameters reach z_2 only through layer 1


def test_a_sampled_initial_state_starts_each_slots_recurrence_from_its_own_sample() -> None:
    """``sample_initial_state``: layer 1 updates each slot's sample ``z_0``, not the shared
    mean ``mu_0``; recomputed here by hand from the traced ``z_0``."""
    import pyro.poutine as poutine

    config = pe.presets.tetrominoes(num_layers=1, z_dim=8)
    images = torch.rand(2, 3, 35, 35)
    for sampled in (False, True):
        torch.manual_seed(0)
        _, guide = pe.build(config.replace(sample_initial_state=sampled))
        trace = poutine.trace(guide).get_trace(images)
        z0 = trace.nodes["z_0"]["value"]
        keys, values = guide.layer.attention.keys_values(guide.encoder(images))
        start = z0 if sampled else guide.initial_loc.expand_as(z0)
        raw = guide.initial_raw_scale.expand_as(z0)
        loc, _, _ = guide.layer(z0, start, raw, keys, values)
        assert torch.allclose(trace.nodes["_RETURN"]["value"].loc, loc, atol=1e-6)


def test_per_slot_init_gives_each_slot_its_own_learned_start() -> None:
    """``per_slot_init``: slot ``k``'s ``z_0`` is drawn around its own mean (with zero noise it is
    that mean; the shared-start guide gives every slot the same), layer 1 starts each slot's
    recurrence from its own mean, every slot's start gets its own gradient, and another ``K``
    is refused in one line."""
    import pyro.poutine as poutine

    from pyro_emorl.infer.noise import FixedNoise

    config = pe.presets.tetrominoes(num_layers=1, z_dim=8)
    images = torch.rand(2, 3, 35, 35)
    zero = {"z_0": torch.zeros(2, 4, 8)}
    torch.manual_seed(0)
    _, shared = pe.build(config)
    with FixedNoise(zero):
        z0 = poutine.trace(shared).get_trace(images).nodes["z_0"]["value"]
    assert torch.equal(z0, z0[:, :1].expand_as(z0))  # every slot the same start
    _, guide = pe.build(config.replace(per_slot_init=True))
    assert guide.initial_loc.shape == (4, 8) and guide.initial_raw_scale.shape == (4, 8)
    with FixedNoise(zero):
        trace = poutine.trace(guide).get_trace(images)
    z0 = trace.nodes["z_0"]["value"]
    assert torch.equal(z0, guide.initial_loc.expand(2, 4, 8))
    assert torch.cdist(guide.initial_loc, guide.initial_loc).triu(1).sum() > 0  # distinct
    keys, values = guide.layer.attention.keys_values(guide.encoder(images))
    loc, _, _ = guide.layer(z0, z0, guide.initial_raw_scale.expand_as(z0), keys, values)
    torch.testing.assert_close(trace.nodes["_RETURN"]["value"].loc, loc)
    trace.nodes["_RETURN"]["value"].loc.sum().backward()
    assert (guide.initial_loc.grad.abs().sum(-1) > 0).all()  # each slot's start learns
    with pytest.raises(ValueError, match="one initial state per slot for K=4.*not 5"):
        guide(images, num_slots=5)
