"""pyro_emorl inside Pyro: SVI, Predictive, custom priors, the refinement ELBO and GECO.

ELBO values are checked against the terms written out by hand from the traces (Gaussian densities
and Gaussian KLs in closed form), in float64 with injected noise (``FixedNoise``).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Predictive
from torch import nn

import pyro_emorl as pe
from pyro_emorl.infer import GECO, FixedNoise, RefinementELBO, StepTerms, trace_terms
from pyro_emorl.models.likelihoods import GaussianLikelihood
from pyro_emorl.nn import SpatialBroadcastDecoder
from pyro_emorl.sites import COMPONENTS_SITE, MASKS_SITE, OBSERVATION_SITE, latent_site
from tests.tiny import (
    HALF_LOG_2PI,
    IMAGE_SHAPE,
    B,
    D,
    K,
    L,
    assert_close,
    build_random,
    default_dtype,
    gaussian_log_density,
    normal_kl,
    num_threads,
    random_images,
    site_noise,
    softplus_scale,
    tiny_config,
)

ELEMENTS = math.prod(IMAGE_SHAPE)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with num_threads(1):
        yield


def _params(*modules: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{name}": p.detach().clone()
        for i, m in enumerate(modules)
        for name, p in m.named_parameters()
    }


# --------------------------------------------------------------------------------------------
# Hand computation of the step objectives from the traces.


def _hand_nll(step: StepTerms, images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian NLL per image of the mask-weighted mean, from the decoded slots of the trace."""
    masks = step.model_trace.nodes[MASKS_SITE]["value"].exp()
    components = step.model_trace.nodes[COMPONENTS_SITE]["value"]
    mean = (masks * components).sum(1)
    return -gaussian_log_density(images, mean, sigma).sum((-3, -2, -1))


def _conditional_prior(model: pe.SlotModel, parent: torch.Tensor):
    """``p(z_l | z_{l+1})`` parameters of the reversed hierarchical prior, scale written out."""
    loc, raw = model.prior.conditional(parent)
    return loc, softplus_scale(raw)


def _hand_kls(model, steps: list[StepTerms]) -> list[torch.Tensor]:
    """Closed-form KL per image of every step for the reversed++ prior with L = 2."""
    g0 = steps[0].guide_trace.nodes
    q = {layer: g0[latent_site(layer)]["fn"].base_dist for layer in (1, 2)}
    z2 = g0[latent_site(2)]["value"]
    p1_loc, p1_scale = _conditional_prior(model, z2)
    zero, one = torch.zeros_like(z2), torch.ones_like(z2)
    kl0 = normal_kl(q[2].loc, q[2].scale, zero, one) + normal_kl(
        q[1].loc, q[1].scale, p1_loc, p1_scale
    )
    kls = [kl0.sum((-2, -1))]
    for step in steps[1:]:
        loc, scale = step.state.loc, softplus_scale(step.state.raw_scale)
        # reversed prior++: the refined top layer is compared with p(z_1 | z_2) of step 0.
        kls.append(normal_kl(loc, scale, p1_loc, p1_scale).sum((-2, -1)))
    return kls


def _hand_objectives(model, steps, images, sigma) -> list[torch.Tensor]:
    kls = _hand_kls(model, steps)
    return [(_hand_nll(s, images, sigma) + kl).mean() for s, kl in zip(steps, kls)]


# --------------------------------------------------------------------------------------------
# (a) SVI


def test_svi_trains_with_the_refinement_elbo():
    model, guide = build_random(register_params=True, std=0.1)
    images = random_images()
    before = _params(model, guide)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=RefinementELBO(num_steps=1))
    losses = [svi.step(images) for _ in range(6)]
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-3:]) < losses[0]
    # Every parameter is in the param store, and (nearly) all of them moved.
    store = pyro.get_param_store()
    assert len(store.keys()) == len(before)
    after = _params(model, guide)
    moved = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(moved) >= len(before) - 2  # e.g. the slot-query LayerNorm bias has zero gradient
    assert any(name.startswith("0.decoder") for name in moved)
    assert any(name.startswith("1.refiner") for name in moved)
    with torch.no_grad():
        assert math.isfinite(svi.evaluate_loss(images))


def test_without_registration_svi_has_no_parameters_to_train():
    """Documents why ``build(..., register_params=True)`` exists: SVI only sees the param store."""
    model, guide = build_random(std=0.1)
    before = _params(model, guide)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=RefinementELBO(num_steps=1))
    svi.step(random_images())
    assert len(pyro.get_param_store().keys()) == 0
    after = _params(model, guide)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_svi_with_geco_updates_its_state_after_every_step():
    model, guide = build_random(register_params=True, std=0.1)
    geco = GECO(RefinementELBO(num_steps=1), -1.0, IMAGE_SHAPE, warm_start=2).double()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), loss=geco)
    images = random_images()
    for _ in range(2):
        svi.step(images)
    assert int(geco.num_updates) == 2 and float(geco.C_ema) == 0.0
    svi.step(images)  # the warm-start update: C_ema <- target - nll, beta unchanged
    assert int(geco.num_updates) == 3
    assert float(geco.C_ema) != 0.0 and float(geco.beta) == pytest.approx(0.55)
    assert "C_ema" not in " ".join(pyro.get_param_store().keys())  # state is not a parameter


# --------------------------------------------------------------------------------------------
# (b) Predictive


def test_predictive_with_the_guide_returns_latents_and_decoded_slots():
    model, guide = build_random()
    images = random_images()
    samples = Predictive(model, guide=guide, num_samples=2)(images)
    for layer in range(1, L + 1):
        assert samples[latent_site(layer)].shape == (2, B, K, D)
    assert samples[COMPONENTS_SITE].shape == (2, B, K, *IMAGE_SHAPE)
    assert samples[MASKS_SITE].shape == (2, B, K, 1, *IMAGE_SHAPE[1:])
    # "x" is observed here, so Predictive returns the data (Pyro's semantics).
    assert samples[OBSERVATION_SITE].shape == (2, B, 1, *IMAGE_SHAPE)
    assert torch.equal(samples[OBSERVATION_SITE][1, :, 0], images)
    # Two different posterior draws, each decoded by the model's decoder.
    top = samples[latent_site(L)]
    assert (top[0] - top[1]).abs().max() > 1e-3
    for i in range(2):
        rgb, logits = model.decoder(top[i])
        assert_close(samples[COMPONENTS_SITE][i], rgb)
        assert_close(samples[MASKS_SITE][i], torch.log_softmax(logits, dim=1))
    assert_close(samples[MASKS_SITE].exp().sum(2), torch.ones(2, B, 1, *IMAGE_SHAPE[1:]))

    # Posterior predictive images: the model conditioned on the guide's draws, x unobserved.
    latents = {latent_site(layer): samples[latent_site(layer)] for layer in range(1, L + 1)}
    predicted = Predictive(model, posterior_samples=latents)(num_images=B)
    assert predicted[OBSERVATION_SITE].shape == (2, B, 1, *IMAGE_SHAPE)
    assert_close(predicted[COMPONENTS_SITE], samples[COMPONENTS_SITE])
    mean = (samples[MASKS_SITE].exp() * samples[COMPONENTS_SITE]).sum(2, keepdim=True)
    residual = (predicted[OBSERVATION_SITE] - mean) / 0.1  # sigma of the tiny config
    assert abs(float(residual.mean())) < 0.1 and abs(float(residual.std()) - 1) < 0.1


@pytest.mark.parametrize("likelihood", ["gaussian", "mixture"])
def test_predictive_of_the_model_alone_samples_from_the_prior(likelihood):
    model, _ = build_random(tiny_config(likelihood=likelihood))
    samples = Predictive(model, num_samples=2)(num_images=3)
    for layer in range(1, L + 1):
        assert samples[latent_site(layer)].shape == (2, 3, K, D)
    assert samples[OBSERVATION_SITE].shape == (2, 3, 1, *IMAGE_SHAPE)
    assert samples[COMPONENTS_SITE].shape == (2, 3, K, *IMAGE_SHAPE)
    assert bool(torch.isfinite(samples[OBSERVATION_SITE]).all())
    # The top layer of the reversed prior is N(0, I).
    top = samples[latent_site(L)]
    assert abs(float(top.mean())) < 0.3 and abs(float(top.std()) - 1) < 0.3

    five = Predictive(model, num_samples=2)(num_images=3, num_slots=5)
    assert five[latent_site(L)].shape == (2, 3, 5, D)
    assert five[MASKS_SITE].shape == (2, 3, 5, 1, *IMAGE_SHAPE[1:])
    assert five[OBSERVATION_SITE].shape == (2, 3, 1, *IMAGE_SHAPE)


def test_model_without_images_needs_num_images():
    model, _ = build_random()
    with pytest.raises(ValueError, match="num_images"):
        model()


# --------------------------------------------------------------------------------------------
# (c) Custom priors written in a few lines of Pyro


class StudentTSlotPrior(nn.Module):
    """Every layer i.i.d. Student-t per slot and dim, with a learned number of degrees of freedom
    (heavier tails than N(0, I); no closed-form KL against the Gaussian posterior)."""

    def __init__(self, z_dim: int, num_layers: int, df: float = 3.0) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.log_df = nn.Parameter(torch.tensor(math.log(df)))
        self.register_buffer("loc", torch.zeros(z_dim))

    def forward(self, images, slots):
        prior = dist.StudentT(self.log_df.exp(), self.loc, 1.0).to_event(1)
        with images, slots:
            for layer in range(1, self.num_layers + 1):
                z = pyro.sample(latent_site(layer), prior)
        return z


class MixtureSlotPrior(nn.Module):
    """Each slot's latents come from a learned M-component Gaussian mixture (an object
    "vocabulary"); the layers below the top one follow N(z_{l+1}, I)."""

    def __init__(self, z_dim: int, num_layers: int, components: int = 4) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, z_dim))
        self.raw_scales = nn.Parameter(torch.zeros(components, z_dim))

    def top(self) -> dist.TorchDistribution:
        parts = dist.Normal(self.locs, F.softplus(self.raw_scales)).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), parts)

    def forward(self, images, slots):
        with images, slots:
            top = pyro.sample(latent_site(self.num_layers), self.top())
            z = top
            for layer in reversed(range(1, self.num_layers)):
                z = pyro.sample(latent_site(layer), dist.Normal(z, 1.0).to_event(1))
        return top  # the decoded layer is z_L


class GlobalStylePrior(nn.Module):
    """A global style latent shared by all images and slots (outside every plate) shifts the slot
    prior: ``style ~ N(0, I)``, ``z_l ~ N(style, I)``; refinement compares with ``N(style, I)``."""

    def __init__(self, z_dim: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.register_buffer("zeros", torch.zeros(z_dim))

    def forward(self, images, slots):
        style = pyro.sample("style", dist.Normal(self.zeros, 1.0).to_event(1))
        with images, slots:
            for layer in range(1, self.num_layers + 1):
                z = pyro.sample(latent_site(layer), dist.Normal(style, 1.0).to_event(1))
        return z

    def refinement_prior(self, model_trace):
        return model_trace.nodes[latent_site(self.num_layers)]["fn"]


class GlobalStyleGuide(nn.Module):
    """The EfficientMORL guide plus a learned Gaussian over the global style latent."""

    def __init__(self, guide: pe.HierarchicalGuide, z_dim: int) -> None:
        super().__init__()
        self.guide = guide
        self.loc = nn.Parameter(torch.zeros(z_dim))
        self.raw_scale = nn.Parameter(torch.zeros(z_dim))

    def forward(self, x, *, refine=None, **kwargs):
        if refine is None:
            pyro.sample("style", dist.Normal(self.loc, F.softplus(self.raw_scale)).to_event(1))
        return self.guide(x, refine=refine, **kwargs)

    def refine(self, state, step):
        return self.guide.refine(state, step)


def _with_prior(prior: nn.Module, seed: int = 0):
    base_model, guide = build_random(seed=seed, std=0.1)
    with default_dtype(torch.float64):
        model = pe.SlotModel(
            prior=prior.double(),
            decoder=SpatialBroadcastDecoder(D, IMAGE_SHAPE[1:], "small"),
            likelihood=GaussianLikelihood(math.log(0.1)),
            num_slots=K,
            image_shape=IMAGE_SHAPE,
        )
    model.decoder.load_state_dict(base_model.decoder.state_dict())
    return model, guide


def _train(model, guide, steps: int = 3, num_steps: int = 1):
    loss_fn = RefinementELBO(num_steps=num_steps)(model, guide)
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=1e-2)
    images = random_images()
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(images)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_student_t_prior_uses_the_monte_carlo_kl_and_trains():
    prior = StudentTSlotPrior(D, L)
    model, guide = _with_prior(prior)
    images = random_images()
    with FixedNoise(site_noise()):
        steps = RefinementELBO(num_steps=1).steps(model, guide, images)
    # No closed form KL(Normal || StudentT): log q(z) - log p(z) at the guide's sample.
    df = float(prior.log_df.detach().exp())
    for layer in range(1, L + 1):
        site = steps[0].guide_trace.nodes[latent_site(layer)]
        q, z = site["fn"].base_dist, site["value"]
        log_t = (
            math.lgamma((df + 1) / 2)
            - math.lgamma(df / 2)
            - 0.5 * math.log(df * math.pi)
            - (df + 1) / 2 * torch.log1p(z**2 / df)
        )
        expected = (gaussian_log_density(z, q.loc, q.scale) - log_t).sum((-2, -1))
        assert_close(steps[0].kl_per_site[latent_site(layer)], expected, what=f"KL of z_{layer}")
    # Without a refinement_prior the refined layer is compared with N(0, I), in closed form.
    loc, scale = steps[1].state.loc, softplus_scale(steps[1].state.raw_scale)
    expected = normal_kl(loc, scale, torch.zeros_like(loc), torch.ones_like(loc)).sum((-2, -1))
    assert_close(steps[1].kl_per_site[latent_site(L)], expected, what="refined KL")

    before = float(prior.log_df.detach())
    losses = _train(model, guide)
    assert all(math.isfinite(v) for v in losses)
    assert float(prior.log_df.detach()) != before


def test_mixture_prior_trains():
    with default_dtype(torch.float64):
        prior = MixtureSlotPrior(D, L)
    model, guide = _with_prior(prior)
    images = random_images()
    with FixedNoise(site_noise()):
        steps = RefinementELBO(num_steps=1).steps(model, guide, images)
    site = steps[0].guide_trace.nodes[latent_site(L)]
    z, q = site["value"], site["fn"].base_dist
    # log of sum_m pi_m N(z; mu_m, s_m), written out.
    weights = torch.softmax(prior.logits, 0)
    per_component = gaussian_log_density(
        z.unsqueeze(-2), prior.locs, F.softplus(prior.raw_scales)
    ).sum(-1)
    log_p = torch.logsumexp(per_component + weights.log(), dim=-1)
    expected = (gaussian_log_density(z, q.loc, q.scale).sum(-1) - log_p).sum(-1)
    assert_close(steps[0].kl_per_site[latent_site(L)], expected, what="mixture KL")

    before = prior.logits.detach().clone()
    losses = _train(model, guide)
    assert all(math.isfinite(v) for v in losses)
    assert not torch.equal(prior.logits.detach(), before)


def test_global_latent_prior_contributes_a_global_kl_and_trains():
    prior = GlobalStylePrior(D, L)
    model, base_guide = _with_prior(prior)
    guide = GlobalStyleGuide(base_guide, D).double()
    images = random_images()
    elbo = RefinementELBO(num_steps=1)
    with FixedNoise(site_noise()):
        steps = elbo.steps(model, guide, images)
    # The style site is outside the images plate: a global KL, shared by the batch.
    q_style = steps[0].guide_trace.nodes["style"]["fn"].base_dist
    expected = normal_kl(q_style.loc, q_style.scale, torch.zeros(D), torch.ones(D)).sum()
    assert_close(steps[0].global_kl, expected, what="global KL")
    assert "style" not in steps[0].kl_per_site
    assert float(steps[1].global_kl) == 0.0  # refinement steps do not resample the style
    obj = elbo.objective(steps[0])
    assert_close(obj, (steps[0].nll + steps[0].kl).mean() + expected / B, what="objective")

    before = guide.loc.detach().clone()
    losses = _train(model, guide)
    assert all(math.isfinite(v) for v in losses)
    assert not torch.equal(guide.loc.detach(), before)


# --------------------------------------------------------------------------------------------
# (d) analytic vs Monte Carlo KL


def test_monte_carlo_kl_is_log_q_minus_log_p_at_the_sample():
    model, guide = build_random()
    images = random_images()
    elbo = RefinementELBO(num_steps=1, analytic_kl=False)
    with FixedNoise(site_noise()):
        steps = elbo.steps(model, guide, images)
    g = steps[0].guide_trace.nodes
    z1, z2 = g[latent_site(1)]["value"], g[latent_site(2)]["value"]
    q1, q2 = g[latent_site(1)]["fn"].base_dist, g[latent_site(2)]["fn"].base_dist
    p1_loc, p1_scale = _conditional_prior(model, z2)
    kl2 = gaussian_log_density(z2, q2.loc, q2.scale) - gaussian_log_density(z2, 0.0, 1.0)
    kl1 = gaussian_log_density(z1, q1.loc, q1.scale) - gaussian_log_density(z1, p1_loc, p1_scale)
    assert_close(steps[0].kl_per_site[latent_site(2)], kl2.sum((-2, -1)), what="KL of z_2")
    assert_close(steps[0].kl_per_site[latent_site(1)], kl1.sum((-2, -1)), what="KL of z_1")
    # Refinement step: q of the refined state against p(z_1 | z_2) of step 0 (reversed++).
    z = steps[1].guide_trace.nodes[latent_site(2)]["value"]
    loc, scale = steps[1].state.loc, softplus_scale(steps[1].state.raw_scale)
    kl = gaussian_log_density(z, loc, scale) - gaussian_log_density(z, p1_loc, p1_scale)
    assert_close(steps[1].kl, kl.sum((-2, -1)), what="refined KL")
    # The analytic estimator on the same traces is the closed form.
    analytic = trace_terms(steps[0].model_trace, steps[0].guide_trace, analytic_kl=True)
    assert_close(analytic.kl, _hand_kls(model, steps[:1])[0], what="analytic KL")


def test_monte_carlo_kl_is_unbiased_for_the_analytic_kl():
    """Many images in one batch give independent draws; per image, E[MC - analytic] = 0 for
    the top layer given the lower layers' samples, so the mean difference is ~0 (4 s.e.)."""
    model, guide = build_random(std=0.1)
    images = random_images(batch=96)
    elbo = RefinementELBO(num_steps=0, analytic_kl=False)
    mc = elbo.steps(model, guide, images)[0]
    analytic = trace_terms(mc.model_trace, mc.guide_trace, analytic_kl=True)
    site = latent_site(L)
    diff = (mc.kl_per_site[site] - analytic.kl_per_site[site]).detach()
    assert diff.std() > 0
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(diff.numel())


# --------------------------------------------------------------------------------------------
# (e) the refinement ELBO


def test_zero_refinement_steps_is_the_weighted_amortized_objective():
    model, guide = build_random()
    images = random_images()
    noise = site_noise(num_steps=0)
    with FixedNoise(noise):
        steps = RefinementELBO(num_steps=0).steps(model, guide, images)
    (objective,) = _hand_objectives(model, steps, images, 0.1)
    for weights, w0 in (("official", 3.0), ("paper", 1.0)):
        elbo = RefinementELBO(num_steps=0, weights=weights)
        with FixedNoise(noise):
            loss = elbo.differentiable_loss(model, guide, images)
        assert_close(loss, w0 * objective, what=f"{weights} loss")


def test_refinement_loss_is_the_weighted_sum_of_hand_computed_step_objectives():
    model, guide = build_random()
    images = random_images()
    noise = site_noise(num_steps=2)
    elbo = RefinementELBO(num_steps=2)
    with FixedNoise(noise):
        steps = elbo.steps(model, guide, images)
    objectives = _hand_objectives(model, steps, images, 0.1)
    for r, (step, obj) in enumerate(zip(steps, objectives)):
        assert_close(elbo.objective(step), obj, what=f"objective of step {r}")
    expected = 5 / 3 * objectives[0] + 4 / 3 * objectives[1] + 1.0 * objectives[2]
    with FixedNoise(site_noise(num_steps=2)):
        loss = elbo.differentiable_loss(model, guide, images)
    assert_close(loss, expected, what="loss")

    # Each refinement step is the refiner's update driven by the gradient of the previous
    # step's objective w.r.t. the top-layer posterior parameters.
    state = steps[0].state
    for r in (1, 2):
        grad_loc, grad_raw = torch.autograd.grad(
            objectives[r - 1], (state.loc, state.raw_scale), retain_graph=True
        )
        d_loc, d_raw, hidden = guide.refiner(
            state.loc, state.raw_scale, grad_loc, grad_raw, state.hidden
        )
        assert_close(steps[r].state.loc, state.loc + d_loc, what=f"refined loc {r}")
        assert_close(steps[r].state.raw_scale, state.raw_scale + d_raw, what=f"raw {r}")
        state = steps[r].state


def test_number_of_steps_and_slots_change_at_call_time():
    model, guide = build_random()
    images = random_images()
    elbo = RefinementELBO(num_steps=1)
    steps = elbo.steps(model, guide, images, num_steps=4)
    assert len(steps) == 5
    steps = elbo.steps(model, guide, images, num_slots=5)
    assert len(steps) == 2
    for step in steps:
        assert step.state.loc.shape == (B, 5, D)
        assert step.model_trace.nodes[COMPONENTS_SITE]["value"].shape == (B, 5, *IMAGE_SHAPE)
        assert step.nll.shape == step.kl.shape == (B,)
    assert steps[0].state.attention[0].shape == (B, 5, IMAGE_SHAPE[1] * IMAGE_SHAPE[2])
    elbo.num_steps = 3
    assert len(elbo.steps(model, guide, images)) == 4
    loss = RefinementELBO(num_steps=2)(model, guide)(images, num_slots=1)
    assert torch.isfinite(loss)
    # Any batch size too.
    assert elbo.steps(model, guide, random_images(batch=5), num_steps=0)[0].nll.shape == (5,)


# --------------------------------------------------------------------------------------------
# (f) evaluation without gradients


def test_loss_under_no_grad_works_with_refinement():
    model, guide = build_random()
    images = random_images()
    elbo = RefinementELBO(num_steps=2)
    with FixedNoise(site_noise()):
        expected = float(elbo.differentiable_loss(model, guide, images).detach())
    with torch.no_grad(), FixedNoise(site_noise()):
        value = elbo.loss(model, guide, images)
    assert isinstance(value, float)
    assert value == pytest.approx(expected, rel=1e-12)
    with torch.no_grad(), FixedNoise(site_noise()):
        module_value = elbo(model, guide)(images)
    assert float(module_value.detach()) == pytest.approx(expected, rel=1e-12)
    assert all(p.grad is None for p in guide.parameters())


# --------------------------------------------------------------------------------------------
# (g) GECO


def _geco(**kwargs) -> GECO:
    return GECO(RefinementELBO(num_steps=2), -1.0, IMAGE_SHAPE, **kwargs).double()


def test_geco_before_warm_start_is_the_plain_elbo():
    model, guide = build_random()
    images = random_images()
    elbo = RefinementELBO(num_steps=2)
    geco = GECO(elbo, -1.0, IMAGE_SHAPE, warm_start=10).double()
    with FixedNoise(site_noise()):
        expected = elbo.differentiable_loss(model, guide, images)
    with FixedNoise(site_noise()):
        value = geco.differentiable_loss(model, guide, images)
    assert not bool(geco.active)
    assert_close(value, expected)


def test_geco_objective_after_warm_start():
    geco = _geco(warm_start=0)
    geco.C_ema.fill_(-12.5)
    geco.beta.fill_(0.8)
    nll = torch.tensor([100.0, 140.0], dtype=torch.float64, requires_grad=True)
    kl = torch.tensor([10.0, 30.0], dtype=torch.float64, requires_grad=True)
    terms = StepTerms(nll, kl, {}, 0.0, None, None, None)
    value = geco.objective(terms)
    softplus_beta = math.log1p(math.exp(0.8))
    # Value: mean KL - softplus(beta) * C_ema; gradient: that of mean KL + softplus(beta) mean NLL.
    assert float(value.detach()) == pytest.approx(20.0 + softplus_beta * 12.5, rel=1e-12)
    grad_nll, grad_kl = torch.autograd.grad(value, (nll, kl))
    assert_close(grad_nll, torch.full((2,), softplus_beta / 2, dtype=torch.float64))
    assert_close(grad_kl, torch.full((2,), 0.5, dtype=torch.float64))


def test_geco_update_arithmetic():
    geco = _geco(warm_start=2, ema_decay=0.9, step_size=0.01, speedup=5.0)
    target = -1.0 * ELEMENTS  # normalized convention: -432 per image
    assert geco.target == pytest.approx(target)

    def update(nll: float) -> tuple[float, float]:
        geco.update(torch.tensor(nll))
        return float(geco.C_ema), float(geco.beta)

    # Before the warm start nothing moves.
    assert update(-100.0) == (0.0, pytest.approx(0.55))
    assert update(-100.0) == (0.0, pytest.approx(0.55))
    # At the warm start: C_ema = target - nll, beta unchanged.
    c, beta = update(-400.0)
    assert (c, beta) == (pytest.approx(target + 400.0), pytest.approx(0.55))  # -32
    # After: EMA, then beta - step * C_ema with the plain step while C_ema < 0.
    c_expected = 0.9 * -32.0 + 0.1 * (target + 420.0)  # -30.0
    c, beta = update(-420.0)
    assert c == pytest.approx(c_expected) and beta == pytest.approx(0.55 + 0.01 * 30.0)  # 0.85
    c_expected = 0.9 * c_expected + 0.1 * (target + 300.0)  # -40.2
    c, beta = update(-300.0)
    assert c == pytest.approx(c_expected) and beta == pytest.approx(0.85 + 0.01 * 40.2)  # 1.252
    # C_ema > 0 (target met): the step is sped up 5x.
    geco.beta.fill_(3.0)
    c_expected = 0.9 * c_expected + 0.1 * (target + 1000.0)  # 20.62
    c, beta = update(-1000.0)
    assert c == pytest.approx(c_expected) and c > 0
    assert beta == pytest.approx(3.0 - 0.05 * c_expected)  # 1.969 (not 3 - 0.01 * 20.62)
    assert int(geco.num_updates) == 6


def test_geco_beta_is_floored_at_beta_min():
    geco = _geco(warm_start=0, ema_decay=0.5, step_size=0.01, speedup=5.0)
    geco.update(torch.tensor(-1000.0))  # warm start: C_ema = -432 + 1000 = 568
    assert float(geco.C_ema) == pytest.approx(568.0) and float(geco.beta) == pytest.approx(0.55)
    geco.beta.fill_(3.0)
    geco.update(torch.tensor(-1000.0))  # C_ema stays 568 > 0: beta - 0.05 * 568 < 0.55
    assert float(geco.C_ema) == pytest.approx(568.0)
    assert float(geco.beta) == pytest.approx(0.55)
    geco.beta.fill_(3.0)
    geco.update(torch.tensor(-432.0 - 20.0))  # C = 20: C_ema = 294, 3 - 0.05 * 294 -> floor
    assert float(geco.beta) == pytest.approx(0.55)
    geco.update(torch.tensor(0.0))  # C = -432: C_ema = -69, beta = 0.55 + 0.01 * 69
    assert float(geco.C_ema) == pytest.approx(-69.0)
    assert float(geco.beta) == pytest.approx(0.55 + 0.69)


def test_geco_official_convention_target():
    normalized = GECO(RefinementELBO(), -2.206, IMAGE_SHAPE, convention="normalized")
    official = GECO(RefinementELBO(), -2.206, IMAGE_SHAPE, convention="official")
    assert normalized.target == pytest.approx(-2.206 * ELEMENTS, rel=1e-14)
    assert official.target == pytest.approx((-2.206 + 0.5 * math.log(2 * math.pi)) * ELEMENTS)
    assert HALF_LOG_2PI == pytest.approx(0.9189385, abs=1e-7)
    assert HALF_LOG_2PI == pytest.approx(HALF_LOG_2PI, rel=1e-15)


def test_geco_state_dict_round_trip_through_the_elbo_module():
    model, guide = build_random()
    module = _geco(warm_start=5)(model, guide)
    state = module.state_dict()
    for key in ("elbo.C_ema", "elbo.beta", "elbo.num_updates"):
        assert key in state
    assert any(k.startswith("model.decoder.") for k in state)
    assert any(k.startswith("guide.encoder.") for k in state)
    module.elbo.C_ema.fill_(-3.25)
    module.elbo.beta.fill_(1.5)
    module.elbo.num_updates.fill_(1234)
    saved = {k: v.clone() for k, v in module.state_dict().items()}

    model2, guide2 = build_random(seed=9)
    restored = _geco(warm_start=5)(model2, guide2)
    restored.load_state_dict(saved)
    assert float(restored.elbo.C_ema) == -3.25
    assert float(restored.elbo.beta) == 1.5
    assert int(restored.elbo.num_updates) == 1234 and bool(restored.elbo.active)
    for key, value in saved.items():
        assert torch.equal(restored.state_dict()[key], value), key
    # The GECO state is not trainable.
    assert all(p is not module.elbo.beta for p in module.parameters())


def test_geco_loss_after_warm_start_uses_the_moving_average():
    model, guide = build_random()
    images = random_images()
    elbo = RefinementELBO(num_steps=1)
    geco = GECO(elbo, -1.0, IMAGE_SHAPE, warm_start=0).double()
    geco.C_ema.fill_(-7.0)
    geco.beta.fill_(0.9)
    with FixedNoise(site_noise(num_steps=1)):
        steps = elbo.steps(model, guide, images, objective=geco.objective)
        loss = elbo.weighted_loss(steps, geco.objective)
    softplus_beta = math.log1p(math.exp(0.9))
    kls = [s.kl.mean() for s in steps]
    expected = 2.0 * (kls[0] + 7.0 * softplus_beta) + 1.5 * (kls[1] + 7.0 * softplus_beta)
    assert_close(loss, expected)


def test_per_scene_latent_with_extra_guide():
    """A prior with a per-image latent shared by the slots, and a guide for it, trains."""
    import pyro
    import pyro.distributions as dist
    from torch import nn

    import pyro_emorl as pe
    from pyro_emorl.sites import latent_site

    config = pe.EMORLConfig(
        image_shape=(3, 12, 12), num_slots=3, z_dim=8, num_layers=2, decoder="small"
    )
    model, guide = pe.build(config)

    class ScenePrior(nn.Module):
        num_layers = 2

        def forward(self, images, slots):
            with images:
                scene = pyro.sample("scene", dist.Normal(torch.zeros(1, 8), 1.0).to_event(1))
            with images, slots:
                top = pyro.sample(latent_site(2), dist.Normal(scene, 1.0).to_event(1))
                pyro.sample(latent_site(1), dist.Normal(top, 1.0).to_event(1))
            return top

    class SceneGuide(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3 * 12 * 12, 16)

        def forward(self, x, images, slots):
            loc, raw = self.net(x.flatten(-3)).unsqueeze(-2).chunk(2, dim=-1)
            with images:
                pyro.sample("scene", dist.Normal(loc, nn.functional.softplus(raw)).to_event(1))

    model = pe.SlotModel(ScenePrior(), model.decoder, model.likelihood, 3, config.image_shape)
    guide = pe.HierarchicalGuide(
        guide.encoder,
        guide.layer,
        guide.refiner,
        2,
        3,
        8,
        config.image_shape,
        extra_guide=SceneGuide(),
    )
    loss_fn = pe.infer.RefinementELBO(num_steps=1)(model, guide)
    scene_weight = guide.extra_guide.net.weight
    before = scene_weight.detach().clone()
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=1e-2)
    images = torch.rand(2, 3, 12, 12)
    terms = pe.infer.RefinementELBO(num_steps=1).steps(model, guide, images)
    assert set(terms[0].kl_per_site) == {"scene", latent_site(1), latent_site(2)}
    for _ in range(3):
        optimizer.zero_grad()
        loss = loss_fn(images)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    assert not torch.equal(scene_weight, before)


def test_no_stochastic_layers_decodes_the_initial_sample():
    """``stochastic_layers = 0`` (an official option): z_0 itself is decoded and refined; its KL
    is not counted at the amortized step, and refinement steps use N(0, I) (spec 4.2c)."""
    import math

    import pyro_emorl as pe
    from pyro_emorl.nn.parameterization import raw_to_scale

    config = pe.EMORLConfig(
        image_shape=(3, 10, 10), num_slots=3, z_dim=6, num_layers=0, decoder="small"
    )
    model, guide = pe.build(config)
    images = torch.rand(2, 3, 10, 10)
    terms = pe.infer.RefinementELBO(num_steps=1).steps(model, guide, images)
    assert torch.equal(terms[0].kl, torch.zeros(2))
    state = terms[1].state
    var = raw_to_scale(state.raw_scale) ** 2
    expected = 0.5 * (var + state.loc**2 - 1 - var.log()).sum((-1, -2))
    torch.testing.assert_close(terms[1].kl, expected.detach())
    loss = pe.infer.RefinementELBO(num_steps=1)(model, guide)(images)
    loss.backward()
    assert guide.initial_loc.grad.abs().sum() > 0 and math.isfinite(loss.item())


def test_decompose_without_layer_decodes_gives_the_same_steps() -> None:
    model, guide = build_random()
    images = random_images()
    outs = []
    for decode_layers in (True, False):
        pyro.set_rng_seed(3)
        with torch.no_grad():
            outs.append(
                pe.decompose(model, guide, images, num_steps=2, decode_layers=decode_layers)
            )
    full, lean = outs
    assert len(full.layers) == guide.num_layers and lean.layers == []
    for a, b in zip(full.steps, lean.steps):
        assert torch.equal(a.masks, b.masks) and torch.equal(a.nll, b.nll)
