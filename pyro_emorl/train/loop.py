"""The training loop: `fit` and the `Trainer` behind it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pyro
import torch
from pyro.infer.util import is_validation_enabled
from torch import nn
from torch.utils.data import Dataset

from pyro_emorl.config import ModelConfig
from pyro_emorl.data.atomic import atomic_path, output_lock
from pyro_emorl.infer import GECO, RefinementCurriculum, build_objective, official_lr_factor
from pyro_emorl.io.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    latest_checkpoint,
    load_newest_checkpoint,
    remove_interrupted_writes,
)
from pyro_emorl.io.loading import check_components, check_finite_weights, initial_weights
from pyro_emorl.io.run_folder import check_new_run_folder, mark_run_folder
from pyro_emorl.nn.precision import resolve_precision, set_conv_dtype
from pyro_emorl.protocols import Guide, SceneModel
from pyro_emorl.registry import build, components_of, config_from_dict
from pyro_emorl.train.batches import BatchStream, batch_images
from pyro_emorl.train.callbacks import (
    Callback,
    StepEnd,
    StopCondition,
    default_callbacks,
    say,
)
from pyro_emorl.train.distributed import (
    DistributedContext,
    allreduce_mean_,
    broadcast_module_,
    distributed_context,
)
from pyro_emorl.train.heldout import HeldOutData
from pyro_emorl.train.interval import IntervalStats
from pyro_emorl.train.logger import truncate_metrics
from pyro_emorl.train.options import RunOptions
from pyro_emorl.train.rng import capture_rng_state, restore_rng_state
from pyro_emorl.train.step import TrainStep
from pyro_emorl.validation import check_images
from pyro_emorl.version import __version__


@dataclass(frozen=True)
class TrainResult:
    """What a call of `fit` achieved.

    Attributes:
        step: completed training steps.
        checkpoint: the last checkpoint written by this process (``None`` on ranks other than 0).
        interrupted: stopped early by SIGINT/SIGTERM (after writing a checkpoint).
        skipped_steps: steps skipped because of a non-finite loss or gradient, in the whole run.
        out_dir: the run directory.
        model: the trained model (on the training device).
        guide: the trained guide.
        geco: the GECO wrapper with its final state, or ``None``.
    """

    step: int
    checkpoint: Path | None
    interrupted: bool
    skipped_steps: int
    out_dir: Path
    model: SceneModel = field(repr=False)
    guide: Guide = field(repr=False)
    geco: GECO | None = field(repr=False)


def fit(
    config: ModelConfig,
    dataset: Dataset,
    options: RunOptions | None = None,
    *,
    model: SceneModel | None = None,
    guide: Guide | None = None,
    eval_data: HeldOutData | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train the model ``config`` describes on ``dataset`` following ``config.training``.

    Runs as one process, or as one rank of a ``torchrun`` job (detected from the environment):
    the global batch ``config.training.batch_size`` is then split across ranks, gradients and the
    GECO statistics are averaged over ranks, and rank 0 logs and writes checkpoints. Pyro's
    validation is switched off during training (it synchronises with the device) and restored.

    Args:
        config: the model and its training recipe.
        dataset: training images; items are dicts with ``"imgs"`` ``[C, H, W]`` in ``[0, 1]``
            (`HDF5Dataset`), tensors, or tuples led by the image.
        options: run settings (output directory, device, seed, resume, intervals).
        model: a model to train instead of ``build(config)`` (seeded with ``options.seed``).
            Give both ``model`` and ``guide`` or neither; they are trained in place. Their
            checkpoints are marked as built from custom programs and load only into programs
            passed again (`load_for_inference(path, model=, guide=)`); to train a custom prior
            that loads by name, register it and name it in ``config`` instead.
        guide: the guide to train.
        eval_data: held-out images with masks, one dataset or ``{name: dataset}``: scored
            (FG-ARI, ARI, MSE, KL, mSC, mIoU) at the start, every ``options.eval_every`` steps
            and at the end, with ``config.refinement_steps`` refinement steps. The scores go to
            ``metrics.jsonl`` (records with ``"<name>/fg_ari"`` etc. and ``train_seconds``),
            TensorBoard (``eval/<name>/<metric>``) and the progress bar. Rank 0 only.
        callbacks: your own [Callback][pyro_emorl.train.Callback]s, run after the library's
            (log, figures, held-out scores, checkpoints) at the start, after every step and at
            the end.

    Returns:
        A `TrainResult`.

    Raises:
        FileExistsError: if ``out_dir`` holds checkpoints and ``options.resume`` is false.
        ValueError: for a batch size the world size does not divide, too little data, or a
            checkpoint whose configuration differs from ``config`` (other than the step count).
        NonFiniteLossError: after ``options.max_skipped_in_a_row`` consecutive non-finite steps.
    """
    options = RunOptions() if options is None else options
    validation = is_validation_enabled()
    pyro.enable_validation(False)
    try:
        with distributed_context(options.device) as context:
            # One run per folder: a second one aimed at it is refused while this one holds it.
            lock = output_lock(options.path) if context.is_main else nullcontext()
            with lock:
                trainer = Trainer(config, dataset, options, context, model=model, guide=guide)
                return trainer.run([*default_callbacks(trainer, eval_data), *callbacks])
    finally:
        pyro.enable_validation(validation)


class Trainer:
    """The state of one training run and the loop over its steps (used through `fit`).

    What happens around the steps (logging, figures, held-out scores, checkpoints, the time
    budget, signals) is done by callbacks (`pyro_emorl.train.callbacks`), given to `run`.

    Args:
        config: the model and its training recipe.
        dataset: training images.
        options: run settings.
        context: this process's place in the (possibly single-process) job.
        model: the model to train (default: ``build(config)``).
        guide: the guide to train (with ``model``).
    """

    def __init__(
        self,
        config: ModelConfig,
        dataset: Dataset,
        options: RunOptions,
        context: DistributedContext,
        *,
        model: SceneModel | None = None,
        guide: Guide | None = None,
    ) -> None:
        if (model is None) != (guide is None):
            raise ValueError("pass both model and guide, or neither")
        # Canonical form (tuples where a caller may have given lists), as checkpoints store it.
        self.config = config = config_from_dict(config.to_dict())
        #: Programs passed in by the caller, which no registered name describes.
        self.custom_programs = model is not None
        if config.training.batch_size % context.world_size:
            raise ValueError(
                f"the global batch size {config.training.batch_size} must be divisible by the "
                f"number of processes {context.world_size}"
            )
        self.dataset = dataset
        self.options = options
        self.context = context
        self.device = context.device
        self.checkpoint_dir = options.path / "checkpoints"
        self.conv_dtype = resolve_precision(options.precision, self.device)
        checkpoint = self._checkpoint_to_resume()
        self.seed = options.seed
        self.stream = BatchStream(
            dataset,
            config.training.batch_size // context.world_size,
            rank=context.rank,
            world_size=context.world_size,
            seed=self.seed,
            num_workers=options.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        self.figure_images = batch_images(dataset[0]).unsqueeze(0).to(self.device)
        # Validation is off while training: check the data once, here.
        check_images(self.figure_images, config.image_shape, check_values=True)
        self._build_programs(model, guide)
        self.step = 0
        #: Seconds spent in training steps (evaluation, figures and checkpoints excluded).
        self.train_seconds = 0.0
        if checkpoint is None:
            if options.init_from is not None:
                self._initialise_from(options.init_from)
            if context.distributed:
                broadcast_module_(self.loss_module)
            pyro.set_rng_seed(self.seed + context.rank)  # independent noise per rank
        else:
            self._load(checkpoint)
            if self.step > config.training.steps:
                raise ValueError(
                    f"{options.path} holds a run at step {self.step}, past the "
                    f"{config.training.steps} steps asked for: ask for more than {self.step} "
                    "steps to extend it"
                )
        self.train_step = self._make_train_step()
        if context.is_main:
            self._prepare_output_dir(resumed=checkpoint is not None)
        self.last_checkpoint: Path | None = None

    @property
    def total_steps(self) -> int:
        """The steps of the whole run."""
        return self.config.training.steps

    def _build_programs(self, model: SceneModel | None, guide: Guide | None) -> None:
        """The programs (seeded: the same initialisation on every rank), the objective and
        the optimizer."""
        training = self.config.training
        pyro.set_rng_seed(self.seed)
        if model is None or guide is None:
            model, guide = build(self.config)
        self.model, self.guide = model, guide
        for module in (self.model, self.guide):
            set_conv_dtype(module, self.conv_dtype)
        self.elbo, self.geco = build_objective(self.config.objective_settings())
        # Pyro's ELBO.__call__ takes modules; the programs are (ModuleLike says so).
        objective = self.elbo if self.geco is None else self.geco
        self.loss_module = objective(cast(nn.Module, self.model), cast(nn.Module, self.guide))
        self.loss_module.to(self.device)
        self.params = [p for p in self.loss_module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            self.params, lr=training.lr, betas=training.adam_betas, fused=True
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: official_lr_factor(s, training.warmup_steps, training.lr_half_life),
        )
        self.curriculum = RefinementCurriculum(training.curriculum)
        self.interval = IntervalStats(self.device)

    def _initialise_from(self, source: str | os.PathLike[str]) -> None:
        """Copy the weights of ``source`` (`RunOptions.init_from`) into the new programs."""
        weights = initial_weights(source)
        kept = []
        for name, program in (("model", self.model), ("guide", self.guide)):
            try:
                missing, unexpected = program.load_state_dict(weights[name], strict=False)
            except RuntimeError as error:  # a tensor of another shape
                reason = str(error).strip().splitlines()[-1].strip()
                raise ValueError(f"init_from {source}: {reason}") from error
            if unexpected:
                raise ValueError(
                    f"init_from {source}: the {name} has no {', '.join(sorted(unexpected)[:3])}"
                    " (a checkpoint of another model?): start from one of this configuration's"
                )
            kept += [f"{name}.{key}" for key in missing]
        if self.context.is_main:
            own = f"; initialised as new: {', '.join(kept)}" if kept else ""
            say(f"started from the weights of {source}{own}")

    def _make_train_step(self) -> TrainStep:
        training = self.config.training
        return TrainStep(
            self.model,
            self.guide,
            self.elbo,
            self.geco,
            self.optimizer,
            self.scheduler,
            self.params,
            training.clip_grad_norm,
            self.curriculum,
            sync=allreduce_mean_ if self.context.distributed else None,
            kl_warmup_steps=training.kl_warmup_steps,
            noise_warmup_steps=training.noise_warmup_steps,
        )

    def _prepare_output_dir(self, resumed: bool) -> None:
        """Rank 0: clear what a killed run left, trim the log to the checkpoint a resumed run
        continues from, and write ``config.json``."""
        path = self.options.path
        path.mkdir(parents=True, exist_ok=True)
        mark_run_folder(path)  # first: the folder is this run's
        remove_interrupted_writes(path, warn=say)  # left by a killed run
        if self.options.resume:  # a run killed before its first checkpoint starts its log anew
            truncate_metrics(path / "metrics.jsonl", self.step if resumed else -1)
        with atomic_path(path / "config.json") as tmp:
            tmp.write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")

    # -- checkpoints ---------------------------------------------------------------------------

    def _checkpoint_to_resume(self) -> Checkpoint | None:
        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            # A new run never mixes with another's files; a resumed one without a checkpoint
            # (killed before its first) starts again, its log truncated.
            if not self.options.resume:
                check_new_run_folder(
                    self.options.path, self.options.overwrite, clear=self.context.is_main
                )
            return None
        if not self.options.resume:
            raise FileExistsError(
                f"{self.options.path} already holds checkpoints (newest {latest.name}); resume "
                "with --resume (RunOptions(resume=True)) or choose another output directory"
            )
        # On the CPU: the RNG states must stay there, and load_state_dict moves everything else.
        # A damaged newest checkpoint is skipped with a warning naming it.
        warn = say if self.context.is_main else None
        newest = load_newest_checkpoint(self.checkpoint_dir, warn=warn)
        if newest is None:
            raise ValueError(
                f"{self.checkpoint_dir} holds no readable checkpoint (every one is damaged): "
                "remove the folder's files to start again, or resume from a copy of the run"
            )
        latest, checkpoint = newest
        if not self.custom_programs:
            check_components(checkpoint, latest)
        elif checkpoint.get("programs") != "custom":
            raise ValueError(
                f"{latest} was trained with the programs its configuration names, not with "
                "programs passed to fit(model=, guide=): resume it without model= and guide="
            )
        saved = config_from_dict(checkpoint["config"])
        # The step count may grow (to extend a run) and the test-time refinement steps may
        # change (they drive evaluations and figures only); anything else would not be a
        # continuation.
        comparable = saved.replace(
            training={"steps": self.config.training.steps},
            refinement_steps=self.config.refinement_steps,
        )
        if comparable != self.config:
            changed = _changed_fields(comparable.to_dict(), self.config.to_dict())
            raise ValueError(
                f"{latest} was trained with a different configuration ({', '.join(changed)}); "
                "resume with the same settings (only the number of steps and the test-time "
                "refinement_steps may change)"
            )
        # Checkpoints from before the precision option were all float32.
        saved_dtype = checkpoint.get("conv_dtype", "float32")
        if saved_dtype != _dtype_name(self.conv_dtype):
            raise ValueError(
                f"{latest} was trained with {saved_dtype} convolutions, not "
                f"{_dtype_name(self.conv_dtype)} (precision={self.options.precision!r}); resume "
                f"with the precision it started with"
            )
        if checkpoint["data"]["seed"] != self.options.seed:
            raise ValueError(
                f"{latest} was trained with seed {checkpoint['data']['seed']}, not "
                f"{self.options.seed}; resume with the same seed"
            )
        return checkpoint

    def state_dict(self) -> Checkpoint:
        """Everything needed to continue exactly (RNG states of every rank included)."""
        epoch, batch = self.stream.position(self.step)
        names: dict[str, Any] = (
            {"programs": "custom"}
            if self.custom_programs
            else {"components": components_of(self.config)}
        )
        return {
            "format": CHECKPOINT_FORMAT,
            "version": __version__,
            **names,
            "step": self.step,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "geco": None if self.geco is None else self.geco.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "interval": self.interval.state_dict(),
            "train_seconds": self.train_seconds,
            "conv_dtype": _dtype_name(self.conv_dtype),
            "rng": self.context.gather(capture_rng_state(self.device)),
            "data": {
                "seed": self.seed,
                "epoch": epoch,
                "batch": batch,
                "batches_per_epoch": self.stream.batches_per_epoch,
                "world_size": self.context.world_size,
                "global_batch_size": self.config.training.batch_size,
            },
        }

    def _load(self, checkpoint: Checkpoint) -> None:
        for name in ("model", "guide"):
            check_finite_weights(self.checkpoint_dir, name, checkpoint[name])
        self.model.load_state_dict(checkpoint["model"])
        self.guide.load_state_dict(checkpoint["guide"])
        if self.geco is not None:
            self.geco.load_state_dict(checkpoint["geco"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.interval.load_state_dict(checkpoint["interval"])
        self.step = int(checkpoint["step"])
        self.train_seconds = float(checkpoint.get("train_seconds", 0.0))
        rng = checkpoint["rng"]
        if len(rng) == self.context.world_size:
            restore_rng_state(rng[self.context.rank], self.device)
        else:
            # A different world size cannot continue bit for bit; keep the runs reproducible.
            pyro.set_rng_seed(self.seed + 1_000_003 * self.step + self.context.rank)
            if self.context.is_main:
                say(
                    f"resuming a {len(rng)}-process checkpoint with {self.context.world_size} "
                    "processes: training continues, but not bit for bit"
                )

    # -- the loop ------------------------------------------------------------------------------

    def run(self, callbacks: Sequence[Callback]) -> TrainResult:
        """Train until ``config.training.steps`` steps are done or a callback stops the run.

        Args:
            callbacks: stop conditions and callbacks, called in this order.
        """
        main = self.context.is_main
        stops = [c for c in callbacks if isinstance(c, StopCondition)]
        interrupted = False
        batches = self.stream.batches(self.step)
        if main and self.step == self.total_steps:
            say(f"{self.options.path} is already at step {self.total_steps}: nothing to train")
        started: list[Callback] = []
        try:
            for callback in callbacks:
                started.append(callback)
                callback.on_train_start(self)
            while self.step < self.total_steps:
                began = time.perf_counter()
                images = next(batches).to(self.device, non_blocking=True)
                self.interval.add(self.train_step(images, self.step))
                self.step += 1
                self.train_seconds += time.perf_counter() - began
                # Every stop condition is asked on every rank (each is a collective call).
                stopped = [c for c in stops if c.should_stop(self)]
                interrupted = any(c.interrupts for c in stopped)
                last = self.step == self.total_steps or (bool(stopped) and not interrupted)
                for callback in callbacks:
                    callback.on_step_end(self, StepEnd(last, interrupted))
                if stopped:
                    if main:
                        say(f"{stopped[0].reason(self)}; checkpoint written")
                    break
        finally:
            batches.close()
            for callback in reversed(started):
                callback.on_train_end(self)
        return TrainResult(
            step=self.step,
            checkpoint=self.last_checkpoint,
            interrupted=interrupted,
            skipped_steps=int(self.interval.skipped_total),
            out_dir=self.options.path,
            model=self.model,
            guide=self.guide,
            geco=self.geco,
        )


def _dtype_name(dtype: torch.dtype | None) -> str:
    """``"bfloat16"`` for bfloat16 convolutions, ``"float32"`` for the parameters' own dtype."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def _changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed
