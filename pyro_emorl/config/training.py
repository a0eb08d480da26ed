"""The settings every model family shares: the optimisation recipe and GECO."""

from __future__ import annotations

from dataclasses import dataclass

from pyro_emorl.config import fields


@dataclass(frozen=True)
class GECOConfig:
    """GECO settings (see [GECO][pyro_emorl.infer.GECO], which uses them).

    Attributes:
        target_per_element: the reconstruction target, a negative log-likelihood per image
            element (``C * H * W`` elements), in ``convention``; the presets quote the official
            per-element targets (Tetrominoes -1.224, CLEVR6 -2.206).
        convention: ``"official"`` (the official code's unnormalised likelihoods; converted by
            adding ``1/2 log(2 pi)`` per element) or ``"normalized"`` (this library's).
        ema_decay: decay of the moving average ``C_ema`` of ``target - nll``, in ``[0, 1)``.
        step_size: base step of the multiplier: ``beta <- max(beta_min, beta - s * C_ema)``.
        speedup: multiplier of ``step_size`` while the constraint is met (``C_ema > 0``); 5 for
            the official CLEVR6 128x128 recipe, 1 elsewhere.
        beta_init: initial ``beta`` (the weight of the NLL is ``softplus(beta)``).
        beta_min: floor of ``beta``.
        warm_start: optimisation steps of the plain ELBO before GECO takes over.
    """

    target_per_element: float
    convention: str = "official"
    ema_decay: float = 0.99
    step_size: float = 1e-6
    speedup: float = 1.0
    beta_init: float = 0.55
    beta_min: float = 0.55
    warm_start: int = 1000

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(
            self,
            "target_per_element",
            fields.real("geco.target_per_element", self.target_per_element),
        )
        fields.choice("geco.convention", self.convention, ("official", "normalized"))
        decay = fields.real("geco.ema_decay", self.ema_decay, minimum=0.0)
        if decay >= 1:
            raise ValueError(f"geco.ema_decay must be in [0, 1), got {decay}")
        _set(self, "ema_decay", decay)
        for name in ("step_size", "speedup"):
            _set(self, name, fields.real(f"geco.{name}", getattr(self, name), positive=True))
        for name in ("beta_init", "beta_min"):
            _set(self, name, fields.real(f"geco.{name}", getattr(self, name)))
        _set(self, "warm_start", fields.integer("geco.warm_start", self.warm_start, 0))


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation recipe (official values by default).

    Attributes:
        steps: optimisation steps of the whole run.
        batch_size: images per step, over all processes together (split across ``torchrun``
            ranks).
        lr: Adam's base learning rate.
        warmup_steps: steps of the linear learning-rate warm-up from 0.
        lr_half_life: steps per halving of the learning rate after the warm-up (see
            [official_lr_factor][pyro_emorl.infer.official_lr_factor]).
        clip_grad_norm: the global gradient norm is clipped to this (``None``: no clipping).
        adam_betas: Adam's ``(beta1, beta2)`` (torch's and the official code's defaults;
            IODINE's original uses ``beta1 = 0.95``).
        curriculum: ``(first_step, I)`` pairs: from ``first_step`` on, training uses ``I``
            refinement steps (see [RefinementCurriculum][pyro_emorl.infer.RefinementCurriculum]).
        kl_warmup_steps: steps over which the KL weight rises linearly from near 0 to
            ``kl_beta`` (see [kl_warmup_factor][pyro_emorl.infer.kl_warmup_factor]); 0, the
            official recipe, charges the full KL from the first step.
        noise_warmup_steps: steps over which the sampling noise of the latents ``z_1 .. z_L``
            rises linearly from 0 (the posterior means) to its full scale; the initial slot
            noise ``z_0`` is never scaled, since it is what tells the slots apart. 0, the
            official recipe, samples with the full noise from the first step.
    """

    steps: int = 300_000
    batch_size: int = 32
    lr: float = 4e-4
    warmup_steps: int = 10_000
    lr_half_life: int = 100_000
    clip_grad_norm: float | None = 5.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    curriculum: tuple[tuple[int, int], ...] = ((-1, 3), (100_000, 1))
    kl_warmup_steps: int = 0
    noise_warmup_steps: int = 0

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(self, "steps", fields.integer("training.steps", self.steps, 1))
        _set(self, "batch_size", fields.integer("training.batch_size", self.batch_size, 1))
        _set(self, "lr", fields.real("training.lr", self.lr, positive=True))
        _set(self, "warmup_steps", fields.integer("training.warmup_steps", self.warmup_steps, 0))
        _set(self, "lr_half_life", fields.integer("training.lr_half_life", self.lr_half_life, 1))
        clip = self.clip_grad_norm
        if clip is not None:
            _set(
                self, "clip_grad_norm", fields.real("training.clip_grad_norm", clip, positive=True)
            )
        _set(self, "curriculum", fields.curriculum("training.curriculum", self.curriculum))
        _set(self, "adam_betas", fields.betas("training.adam_betas", self.adam_betas))
        _set(
            self,
            "kl_warmup_steps",
            fields.integer("training.kl_warmup_steps", self.kl_warmup_steps, 0),
        )
        _set(
            self,
            "noise_warmup_steps",
            fields.integer("training.noise_warmup_steps", self.noise_warmup_steps, 0),
        )
