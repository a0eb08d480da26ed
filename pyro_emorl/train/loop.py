"""The training loop: `fit` and the `Trainer` behind it."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer.util import is_validation_enabled
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pyro_emorl.config import EMORLConfig, build
from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.decompose import decompose
from pyro_emorl.guide import HierarchicalGuide
from pyro_emorl.infer import GECO, RefinementCurriculum, official_lr_factor
from pyro_emorl.model import EMORLModel
from pyro_emorl.nn.precision import resolve_precision, set_conv_dtype
from pyro_emorl.train.batches import BatchStream, batch_images
from pyro_emorl.train.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    checkpoint_path,
    latest_checkpoint,
    load_newest_checkpoint,
    prune_checkpoints,
    remove_interrupted_writes,
    save_checkpoint,
)
from pyro_emorl.train.distributed import (
    DistributedContext,
    allreduce_mean_,
    broadcast_module_,
    distributed_context,
)
from pyro_emorl.train.heldout import HeldOutData, HeldOutEvaluator
from pyro_emorl.train.interval import IntervalStats
from pyro_emorl.train.logger import RunLogger, truncate_metrics
from pyro_emorl.train.options import RunOptions
from pyro_emorl.train.rng import capture_rng_state, restore_rng_state
from pyro_emorl.train.signals import StopRequest
from pyro_emorl.train.step import TrainStep, build_objective
from pyro_emorl.validation import check_images


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


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
    model: EMORLModel = field(repr=False)
    guide: HierarchicalGuide = field(repr=False)
    geco: GECO | None = field(repr=False)


def fit(
    config: EMORLConfig,
    dataset: Dataset,
    options: RunOptions | None = None,
    *,
    model: EMORLModel | None = None,
    guide: HierarchicalGuide | None = None,
    eval_data: HeldOutData | None = None,
) -> TrainResult:
    """Train EfficientMORL on ``dataset`` following ``config.training``.

    Runs as one process, or as one rank of a ``torchrun`` job (detected from the environment):
    the global batch ``config.training.batch_size`` is then split across ranks, gradients and the
    GECO statistics are averaged over ranks, and rank 0 logs and writes checkpoints. Pyro's
    validation is switched off during training (it synchronises with the device) and restored.

    Args:
        config: the model and its training recipe.
        dataset: training images; items are dicts with ``"imgs"`` ``[C, H, W]`` in ``[0, 1]``
            (`HDF5Dataset`), tensors, or tuples led by the image.
        options: run settings (output directory, device, seed, resume, intervals).
        model: the model to train, e.g. with a custom prior (default: ``build(config)``, seeded
            with ``options.seed``). Give both ``model`` and ``guide`` or neither; they are trained
            in place and must fit ``config``, which is still what checkpoints record.
        guide: the guide to train.
        eval_data: held-out images with masks, one dataset or ``{name: dataset}``: scored
            (FG-ARI, ARI, MSE, KL, mSC, mIoU) at the start, every ``options.eval_every`` steps
            and at the end, with ``config.refinement_steps`` refinement steps. The scores go to
            ``metrics.jsonl`` (records with ``"<name>/fg_ari"`` etc. and ``train_seconds``),
            TensorBoard (``eval/<name>/<metric>``) and the progress bar. Rank 0 only.

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
            trainer = Trainer(
                config, dataset, options, context, model=model, guide=guide, eval_data=eval_data
            )
            return trainer.run()
    finally:
        pyro.enable_validation(validation)


class Trainer:
    """The state of one training run and the loop over its steps (used through `fit`).

    Args:
        config: the model and its training recipe.
        dataset: training images.
        options: run settings.
        context: this process's place in the (possibly single-process) job.
        model: the model to train (default: ``build(config)``).
        guide: the guide to train (with ``model``).
        eval_data: held-out sets scored along the way (see `fit`).
    """

    def __init__(
        self,
        config: EMORLConfig,
        dataset: Dataset,
        options: RunOptions,
        context: DistributedContext,
        *,
        model: EMORLModel | None = None,
        guide: HierarchicalGuide | None = None,
        eval_data: HeldOutData | None = None,
    ) -> None:
        if (model is None) != (guide is None):
            raise ValueError("pass both model and guide, or neither")
        # Canonical form (tuples where a caller may have given lists), as checkpoints store it.
        config = EMORLConfig.from_dict(config.to_dict())
        training = config.training
        if training.batch_size % context.world_size:
            raise ValueError(
                f"the global batch size {training.batch_size} must be divisible by the number "
                f"of processes {context.world_size}"
            )
        self.config = config
        self.dataset = dataset
        self.options = options
        self.context = context
        self.device = context.device
        self.checkpoint_dir = options.path / "checkpoints"
        self.conv_dtype = resolve_precision(options.precision, self.device)
        self.evaluator = None
        if eval_data is not None and context.is_main:
            self.evaluator = HeldOutEvaluator(
                eval_data, options.eval_images, options.eval_batch_size
            )
        checkpoint = self._checkpoint_to_resume()
        seed = self.seed = options.seed
        self.stream = BatchStream(
            dataset,
            training.batch_size // context.world_size,
            rank=context.rank,
            world_size=context.world_size,
            seed=seed,
            num_workers=options.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        self.figure_images = batch_images(dataset[0]).unsqueeze(0).to(self.device)
        # Validation is off while training: check the data once, here.
        check_images(self.figure_images, config.image_shape, check_values=True)

        pyro.set_rng_seed(seed)  # the same initialisation on every rank
        self.model, self.guide = build(config) if model is None else (model, guide)
        for module in (self.model, self.guide):
            set_conv_dtype(module, self.conv_dtype)
        self.elbo, self.geco = build_objective(config)
        loss_module = (self.elbo if self.geco is None else self.geco)(self.model, self.guide)
        loss_module.to(self.device)
        self.params = [p for p in loss_module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=training.lr, fused=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: official_lr_factor(s, training.warmup_steps, training.lr_half_life),
        )
        self.curriculum = RefinementCurriculum(training.curriculum)
        self.interval = IntervalStats(self.device)
        self.step = 0
        #: Seconds spent in training steps (evaluation, figures and checkpoints excluded).
        self.train_seconds = 0.0
        if checkpoint is None:
            if context.distributed:
                broadcast_module_(loss_module)
            pyro.set_rng_seed(seed + context.rank)  # independent noise per rank
        else:
            self._load(checkpoint)
            if self.step > training.steps:
                raise ValueError(
                    f"{options.path} holds a run at step {self.step}, past the {training.steps} "
                    f"steps asked for: ask for more than {self.step} steps to extend it"
                )

        self.train_step = TrainStep(
            self.model,
            self.guide,
            self.elbo,
            self.geco,
            self.optimizer,
            self.scheduler,
            self.params,
            training.clip_grad_norm,
            self.curriculum,
            sync=allreduce_mean_ if context.distributed else None,
            kl_warmup_steps=training.kl_warmup_steps,
            noise_warmup_steps=training.noise_warmup_steps,
        )
        self.logger: RunLogger | None = None
        if context.is_main:
            remove_interrupted_writes(options.path, warn=_say)  # left by a killed run
            if options.resume:  # a run killed before its first checkpoint starts its log anew
                last = self.step if checkpoint is not None else -1
                truncate_metrics(options.path / "metrics.jsonl", last)
            self.logger = RunLogger(options.path, tensorboard=options.tensorboard)
            with atomic_path(options.path / "config.json") as tmp:
                tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        self.last_checkpoint: Path | None = None
        #: The latest held-out FG-ARI per set, shown on the progress bar.
        self.last_eval: dict[str, float] = {}

    # -- checkpoints ---------------------------------------------------------------------------

    def _checkpoint_to_resume(self) -> Checkpoint | None:
        latest = latest_checkpoint(self.checkpoint_dir)
        if latest is None:
            # A run killed before its first checkpoint leaves a log; a new run must not mix in.
            if not self.options.resume and (self.options.path / "metrics.jsonl").exists():
                raise FileExistsError(
                    f"{self.options.path} holds another run's metrics.jsonl but no checkpoint: "
                    "remove the folder's files or choose another output directory"
                )
            return None
        if not self.options.resume:
            raise FileExistsError(
                f"{self.options.path} already holds checkpoints (newest {latest.name}); resume "
                "with --resume (RunOptions(resume=True)) or choose another output directory"
            )
        # On the CPU: the RNG states must stay there, and load_state_dict moves everything else.
        # A damaged newest checkpoint is skipped with a warning naming it.
        say = _say if self.context.is_main else None
        latest, checkpoint = load_newest_checkpoint(self.checkpoint_dir, warn=say)
        saved = EMORLConfig.from_dict(checkpoint["config"])
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
        return {
            "format": CHECKPOINT_FORMAT,
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
                _say(
                    f"resuming a {len(rng)}-process checkpoint with {self.context.world_size} "
                    "processes: training continues, but not bit for bit"
                )

    def save(self) -> None:
        """Write a checkpoint of the current step (rank 0; every rank must call it)."""
        finite = torch.stack([torch.isfinite(p).all() for p in self.params]).all()
        if not bool(finite):  # cannot happen (non-finite steps are skipped); never persist it
            raise NonFiniteLossError(
                f"parameters became non-finite at step {self.step}; no checkpoint written"
            )
        state = self.state_dict()
        if not self.context.is_main:
            return
        path = save_checkpoint(state, checkpoint_path(self.checkpoint_dir, self.step))
        prune_checkpoints(self.checkpoint_dir, self.options.keep_checkpoints)
        self.last_checkpoint = path

    # -- logging and figures -------------------------------------------------------------------

    def _log(self, bar: tqdm, since: tuple[int, float], reset: bool = True) -> None:
        extra = {}
        if self.geco is not None:
            extra = {"geco_beta": self.geco.beta, "geco_C_ema": self.geco.C_ema}
        record: dict[str, Any] = {"step": self.step}
        # Every rank reads: they all check the skip limit.
        record.update(self.interval.read(extra, reset=reset))
        steps, seconds = self.step - since[0], max(time.perf_counter() - since[1], 1e-9)
        if self.train_step.kl_warmup_steps:
            record["kl_weight"] = self.train_step.kl_weight_at(max(self.step - 1, 0))
        if self.train_step.noise_warmup_steps:
            record["noise_factor"] = self.train_step.noise_factor_at(max(self.step - 1, 0))
        record.update(
            lr=self.scheduler.get_last_lr()[0],
            refinement_steps=self.curriculum(self.step - 1),
            steps_per_s=steps / seconds,
            images_per_s=steps * self.config.training.batch_size / seconds,
        )
        if self.logger is not None:
            self.logger.log(record)
            shown = {k: record[k] for k in ("loss", "nll", "kl", "geco_beta") if k in record}
            shown.update(self.last_eval)
            bar.set_postfix({k: "nan" if v is None else f"{v:.4g}" for k, v in shown.items()})
            if record["skipped"]:
                _say(
                    f"step {self.step}: skipped {record['skipped']} steps with a non-finite loss "
                    f"or gradient ({record['skipped_total']} in total)"
                )
        if record["longest_skipped_run"] >= self.options.max_skipped_in_a_row:
            raise NonFiniteLossError(
                f"{record['longest_skipped_run']} consecutive steps up to step {self.step} had a "
                "non-finite loss or gradient; stopping (the last checkpoint is intact). Lower the "
                "learning rate or check the data"
            )

    def _figure(self) -> None:
        # Imported here: matplotlib costs every run that draws no figure ~30 MB and a second.
        from pyro_emorl.viz import plot_decomposition, save_figure

        devices = [self.device] if self.device.type == "cuda" else []
        # A private RNG stream: figures must not change the training noise.
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            decomposition = decompose(
                self.model,
                self.guide,
                self.figure_images,
                num_steps=self.curriculum(max(self.step - 1, 0)),
                elbo=self.elbo,
                objective=None if self.geco is None else self.geco.objective,
            )
        figure = plot_decomposition(decomposition, self.figure_images)
        save_figure(figure, self.options.path / "figures" / f"step-{self.step:08d}.png")
        if self.logger is not None:
            self.logger.figure("decomposition", figure, self.step)

    def _evaluate(self) -> None:
        assert self.evaluator is not None
        scores = self.evaluator(
            self.model,
            self.guide,
            num_steps=self.config.refinement_steps,
            objective=None if self.geco is None else self.geco.objective,
        )
        record: dict[str, Any] = {"step": self.step, "train_seconds": self.train_seconds}
        record.update(scores)
        if self.logger is not None:
            self.logger.log(record, prefix="eval")
        shown = {k: v for k, v in scores.items() if k.endswith("/fg_ari")}
        if self.options.progress:
            _say(
                f"step {self.step} ({self.train_seconds:.0f} s of training): "
                + ", ".join(f"{k.replace('/', ' ')} {v:.3f}" for k, v in shown.items())
            )
        self.last_eval = shown

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until ``config.training.steps`` steps are done or a stop signal arrives."""
        options, total = self.options, self.config.training.steps
        main = self.context.is_main
        interrupted = False
        batches = self.stream.batches(self.step)
        bar = tqdm(
            total=total,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (options.progress and main),
        )
        if main and self.step == total:
            _say(f"{options.path} is already at step {total}: nothing to train")
        try:
            with StopRequest() as stop:
                if main and options.figure_every and self.step == 0:
                    self._figure()  # the initialisation, for comparison
                if self.evaluator is not None and self.step == 0:
                    self._evaluate()
                since = (self.step, time.perf_counter())
                budget = math.inf if options.time_budget_s is None else options.time_budget_s
                while self.step < total:
                    started = time.perf_counter()
                    images = next(batches).to(self.device, non_blocking=True)
                    self.interval.add(self.train_step(images, self.step))
                    self.step += 1
                    self.train_seconds += time.perf_counter() - started
                    bar.update(1)
                    # Every rank stops at the same step: rank 0's clock decides.
                    over_budget = budget < math.inf and self.context.any_rank(
                        self.context.is_main and self.train_seconds >= budget
                    )
                    done = self.step == total or over_budget
                    on_interval = self.step % options.log_every == 0
                    if on_interval or done:
                        # A final record off the interval leaves the interval running, so that
                        # extending the run later logs what one longer run would have logged.
                        self._log(bar, since, reset=on_interval)
                        since = (self.step, time.perf_counter())
                    every = options.figure_every
                    if main and every and (done or self.step % every == 0):
                        self._figure()
                    every = options.eval_every
                    if self.evaluator is not None and (done or (every and self.step % every == 0)):
                        self._evaluate()
                    interrupted = self.context.any_rank(stop.requested)
                    if interrupted or done or self.step % options.checkpoint_every == 0:
                        self.save()
                    if interrupted:
                        if main:
                            _say(f"stopped at step {self.step}; checkpoint written")
                        break
                    if over_budget:
                        if main:
                            _say(
                                f"time budget of {budget:g} s reached at step {self.step}; "
                                "checkpoint written"
                            )
                        break
        finally:
            batches.close()
            bar.close()
            if self.logger is not None:
                self.logger.close()
        return TrainResult(
            step=self.step,
            checkpoint=self.last_checkpoint,
            interrupted=interrupted,
            skipped_steps=int(self.interval.skipped_total),
            out_dir=options.path,
            model=self.model,
            guide=self.guide,
            geco=self.geco,
        )


def _dtype_name(dtype: torch.dtype | None) -> str:
    """``"bfloat16"`` for bfloat16 convolutions, ``"float32"`` for the parameters' own dtype."""
    return "float32" if dtype is None else str(dtype).removeprefix("torch.")


def _say(message: str) -> None:
    # Beside the progress bar, on stderr: stdout stays for what the caller prints (e.g. JSON).
    tqdm.write(message, file=sys.stderr)


def _changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_fields(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed
