"""One training step: the official order, the LR schedule, the curriculum, and skipping
non-finite steps on the device."""

from __future__ import annotations

import copy

import pyro
import pytest
import torch

import pyro_emorl as pe
from pyro_emorl.infer import (
    FixedNoise,
    RefinementCurriculum,
    build_objective,
    kl_warmup_factor,
    official_lr_factor,
)
from pyro_emorl.sites import latent_site
from pyro_emorl.train import TrainStep
from tests.test_train_worker import tiny_config
from tests.tiny import num_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


def _setup(config: pe.EMORLConfig) -> tuple[TrainStep, list]:
    torch.manual_seed(0)
    model, guide = pe.build(config)
    elbo, geco = build_objective(config.objective_settings())
    params = [p for p in (elbo if geco is None else geco)(model, guide).parameters()]
    optimizer = torch.optim.Adam(params, lr=config.training.lr, fused=True)
    training = config.training
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: official_lr_factor(s, training.warmup_steps, training.lr_half_life)
    )
    step = TrainStep(
        model,
        guide,
        elbo,
        geco,
        optimizer,
        scheduler,
        params,
        training.clip_grad_norm,
        RefinementCurriculum(training.curriculum),
        kl_warmup_steps=training.kl_warmup_steps,
        noise_warmup_steps=training.noise_warmup_steps,
    )
    return step, params


def _images(seed: int = 0) -> torch.Tensor:
    return torch.rand(4, 3, 12, 12, generator=torch.Generator().manual_seed(seed))


def test_build_objective_follows_the_config() -> None:
    config = tiny_config(kl_beta=0.5, step_weights="paper")
    elbo, geco = build_objective(config.objective_settings())
    assert elbo.kl_beta == 0.5 and elbo.weights == "paper"
    assert geco is not None and geco.warm_start == 3 and geco.elbo is elbo
    assert build_objective(tiny_config(geco=None).objective_settings())[1] is None


def test_steps_follow_the_lr_schedule_and_the_curriculum() -> None:
    step, _ = _setup(tiny_config())
    used = []
    original = step.elbo.steps

    def spy(*args, **kwargs):
        used.append((kwargs["num_steps"], step.optimizer.param_groups[0]["lr"]))
        return original(*args, **kwargs)

    step.elbo.steps = spy
    for s in range(8):
        stats = step(_images(s), s)
        assert bool(stats.finite)
    lr = tiny_config().training.lr
    factors = [official_lr_factor(s, 2, 100_000) for s in range(8)]
    assert [n for n, _ in used] == [2] * 6 + [1] * 2  # curriculum ((-1, 2), (6, 1))
    assert [r for _, r in used] == pytest.approx([lr * f for f in factors])
    assert int(step.geco.num_updates) == 8
    assert float(step.geco.beta) > 0.55  # GECO active from the 4th update, target unreachable


def test_non_finite_step_changes_nothing() -> None:
    pyro.enable_validation(False)  # as in fit(); validation would reject the NaN image up front
    step, params = _setup(tiny_config())
    for s in range(5):  # past the GECO warm start, so every buffer is live
        step(_images(s), s)
    params_before = [p.detach().clone() for p in params]
    optimizer_before = copy.deepcopy(step.optimizer.state_dict()["state"])
    geco_before = {k: v.clone() for k, v in step.geco.state_dict().items()}

    bad = _images(9)
    bad[1, 0, 3, 3] = float("nan")
    stats = step(bad, 5)

    assert not bool(stats.finite)
    for before, p in zip(params_before, params):
        assert torch.equal(before, p)
    for index, state in step.optimizer.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(value, optimizer_before[index][key]), key
    for key, value in step.geco.state_dict().items():
        assert torch.equal(value, geco_before[key]), key
    assert step.scheduler.last_epoch == 6  # the step index still advances

    assert bool(step(_images(10), 6).finite)  # and training goes on


def test_needs_a_fused_optimizer() -> None:
    step, params = _setup(tiny_config())
    with pytest.raises(ValueError, match="fused"):
        TrainStep(
            step.model,
            step.guide,
            step.elbo,
            step.geco,
            torch.optim.Adam(params),
            step.scheduler,
            params,
            5.0,
            step.curriculum,
        )


def test_kl_warmup_factor_rises_linearly_to_one() -> None:
    assert [kl_warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [kl_warmup_factor(s, 0) for s in range(3)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("step_index", [0, 2, 5])
def test_a_kl_warmup_step_is_a_step_with_the_lowered_kl_weight(step_index: int) -> None:
    warm = tiny_config(geco=None, kl_beta=0.5).replace(training={"kl_warmup_steps": 4})
    lowered = tiny_config(geco=None, kl_beta=0.5 * min(1.0, (step_index + 1) / 4))
    warm_step, warm_params = _setup(warm)
    lowered_step, lowered_params = _setup(lowered)
    torch.manual_seed(1)
    warm_stats = warm_step(_images(), step_index)
    torch.manual_seed(1)
    lowered_stats = lowered_step(_images(), step_index)
    assert float(warm_stats.loss) == pytest.approx(float(lowered_stats.loss), rel=1e-6)
    for a, b in zip(warm_params, lowered_params):
        torch.testing.assert_close(a, b)
    assert warm_step.elbo.kl_beta == 0.5  # the configured weight is back after the step
    if step_index < 3:  # the warm-up changed the loss
        unwarmed, _ = _setup(tiny_config(geco=None, kl_beta=0.5))
        torch.manual_seed(1)
        assert float(unwarmed(_images(), step_index).loss) != pytest.approx(
            float(warm_stats.loss), rel=1e-4
        )


def test_kl_warmup_steps_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="kl_warmup_steps"):
        pe.TrainingConfig(kl_warmup_steps=-1)


def test_the_noise_factor_rises_linearly_from_zero_to_one() -> None:
    step, _ = _setup(tiny_config(geco=None).replace(training={"noise_warmup_steps": 4}))
    assert [step.noise_factor_at(s) for s in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    plain, _ = _setup(tiny_config(geco=None))
    assert [plain.noise_factor_at(s) for s in range(3)] == [1.0, 1.0, 1.0]


def test_a_step_at_the_start_of_a_noise_warmup_decodes_the_posterior_means() -> None:
    """Step 0 of a noise warm-up equals a plain step whose ``z_1 .. z_L`` noise is zero (the
    initial slot noise ``z_0``, drawn first, is the same in both)."""
    # L = 2, I = 2: z_2 is sampled once per inference step. Gain 1 (not the official 0.02), so
    # that the decoder reads the latents from the first step and the noise shows in the loss.
    config = tiny_config(geco=None, init_gain=1.0)
    warm_step, warm_params = _setup(config.replace(training={"noise_warmup_steps": 10}))
    plain_step, plain_params = _setup(config)
    zeros = torch.zeros(4, 3, 8)
    means = {latent_site(1): [zeros], latent_site(2): [zeros] * 3}
    torch.manual_seed(1)
    warm_stats = warm_step(_images(), 0)
    torch.manual_seed(1)
    with FixedNoise(means):
        plain_stats = plain_step(_images(), 0)
    assert float(warm_stats.loss) == pytest.approx(float(plain_stats.loss), rel=1e-6)
    for a, b in zip(warm_params, plain_params):
        torch.testing.assert_close(a, b)
    torch.manual_seed(1)
    noisy, _ = _setup(config)
    assert float(noisy(_images(), 0).loss) != pytest.approx(float(warm_stats.loss), rel=1e-4)


def test_noise_warmup_steps_must_be_a_count() -> None:
    with pytest.raises(ValueError, match="noise_warmup_steps"):
        pe.TrainingConfig(noise_warmup_steps=-1)
