"""What happens around the training steps, one callback each: the metrics log, decomposition
figures, held-out scores, checkpoints, the time budget and stop signals.

A callback sees the `Trainer` (its step, programs, configuration and run options) at the start of
training, after every step and at the end. `fit` runs the library's callbacks and then those a
user passes (``fit(..., callbacks=[...])``): subclass `Callback` and override what you need.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from tqdm.auto import tqdm

from pyro_emorl.decompose import decompose
from pyro_emorl.io.checkpoint import checkpoint_path, prune_checkpoints, save_checkpoint
from pyro_emorl.train.heldout import HeldOutData, HeldOutEvaluator
from pyro_emorl.train.logger import RunLogger
from pyro_emorl.train.signals import StopRequest

if TYPE_CHECKING:
    from pyro_emorl.train.loop import Trainer


class NonFiniteLossError(ValueError):
    """Too many consecutive steps had a non-finite loss or gradient (a recipe that diverges:
    a ``ValueError``, so the command line reports it in one line)."""


class StepEnd(NamedTuple):
    """How a step ended.

    Attributes:
        last: the run ends after this step (all steps done or the time budget spent): log,
            draw, score and checkpoint it.
        interrupted: a stop signal arrived: only a checkpoint is written, so that resuming
            continues exactly as if nothing had happened.
    """

    last: bool
    interrupted: bool


class Callback:
    """Something done around the training steps (the default methods do nothing)."""

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step of this call of `fit` (``trainer.step`` may be > 0 on resume)."""

    def on_step_end(self, trainer: Trainer, end: StepEnd) -> None:
        """After every step; ``trainer.step`` counts the completed steps."""

    def on_train_end(self, trainer: Trainer) -> None:
        """After the last step, a stop, or an error (always called)."""


class StopCondition(Callback):
    """A callback that may end the run after a step.

    Attributes:
        interrupts: ``True`` if its stop is an interruption (only a checkpoint is written, as
            for a signal); ``False`` if the step it stops at is the run's last (logged, drawn,
            scored and checkpointed, as for a spent time budget).
    """

    interrupts = False

    def should_stop(self, trainer: Trainer) -> bool:
        """Whether to stop after the current step (the same answer on every rank)."""
        raise NotImplementedError

    def reason(self, trainer: Trainer) -> str:
        """Why the run stopped, for the message printed once its checkpoint is written."""
        raise NotImplementedError


class TimeBudget(StopCondition):
    """End the run once its training steps have taken ``seconds`` (evaluation, figures and
    checkpoints excluded; the steps of earlier calls of a resumed run included). Rank 0's clock
    decides, so every rank stops at the same step.

    Args:
        seconds: the budget.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def should_stop(self, trainer: Trainer) -> bool:
        """Whether the budget is spent."""
        context = trainer.context
        return context.any_rank(context.is_main and trainer.train_seconds >= self.seconds)

    def reason(self, trainer: Trainer) -> str:
        """The budget and the step."""
        return f"time budget of {self.seconds:g} s reached at step {trainer.step}"


class StopOnSignal(StopCondition):
    """Turn the first SIGINT or SIGTERM into a stop after the current step (with a checkpoint);
    a second one stops at once."""

    interrupts = True

    def __init__(self) -> None:
        self.request = StopRequest()

    def on_train_start(self, trainer: Trainer) -> None:
        """Install the signal handlers."""
        self.request.__enter__()

    def should_stop(self, trainer: Trainer) -> bool:
        """Whether a signal arrived on any rank."""
        return trainer.context.any_rank(self.request.requested)

    def reason(self, trainer: Trainer) -> str:
        """The step the signal stopped."""
        return f"stopped at step {trainer.step}"

    def on_train_end(self, trainer: Trainer) -> None:
        """Restore the previous signal handlers."""
        self.request.__exit__(None, None, None)


class MetricsLog(Callback):
    """Every ``every`` steps (and at the end), the mean loss, NLL, KL, gradient norm, skipped
    steps, learning rate and speed to ``metrics.jsonl`` and TensorBoard (rank 0), with the
    progress bar. Stops the run after ``max_skipped_in_a_row`` consecutive non-finite steps.

    A final record off the interval leaves the interval running, so that extending the run later
    logs what one longer run would have logged.

    Args:
        every: steps between records.
        max_skipped_in_a_row: non-finite steps in a row that end the run.
        tensorboard: also write TensorBoard events.
        progress: show a progress bar.
    """

    def __init__(
        self, every: int, max_skipped_in_a_row: int, tensorboard: bool, progress: bool
    ) -> None:
        self.every = every
        self.max_skipped_in_a_row = max_skipped_in_a_row
        self.tensorboard = tensorboard
        self.progress = progress
        self.logger: RunLogger | None = None
        self.bar: Any = None
        self._since = (0, 0.0)
        #: What the progress bar shows besides the training losses (e.g. held-out FG-ARI).
        self.shown: dict[str, float | None] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        """Open the log (rank 0) and the progress bar."""
        if trainer.context.is_main:
            self.logger = RunLogger(trainer.options.path, tensorboard=self.tensorboard)
        self.bar = tqdm(
            total=trainer.total_steps,
            initial=trainer.step,
            unit="step",
            dynamic_ncols=True,
            disable=not (self.progress and trainer.context.is_main),
        )
        self._since = (trainer.step, time.perf_counter())

    def on_step_end(self, trainer: Trainer, end: StepEnd) -> None:
        """Log on the interval and at the end of the run."""
        self.bar.update(1)
        on_interval = trainer.step % self.every == 0
        if on_interval or end.last:
            self._log(trainer, reset=on_interval)
            self._since = (trainer.step, time.perf_counter())

    def on_train_end(self, trainer: Trainer) -> None:
        """Close the bar and the log."""
        if self.bar is not None:
            self.bar.close()
        if self.logger is not None:
            self.logger.close()

    def _log(self, trainer: Trainer, reset: bool) -> None:
        extra = {}
        if trainer.geco is not None:
            extra = {"geco_beta": trainer.geco.beta, "geco_C_ema": trainer.geco.C_ema}
        record: dict[str, Any] = {"step": trainer.step}
        # Every rank reads: they all check the skip limit.
        record.update(trainer.interval.read(extra, reset=reset))
        step = trainer.train_step
        if step.kl_warmup_steps:
            record["kl_weight"] = step.kl_weight_at(max(trainer.step - 1, 0))
        if step.noise_warmup_steps:
            record["noise_factor"] = step.noise_factor_at(max(trainer.step - 1, 0))
        steps = trainer.step - self._since[0]
        seconds = max(time.perf_counter() - self._since[1], 1e-9)
        record.update(
            lr=trainer.scheduler.get_last_lr()[0],
            refinement_steps=trainer.curriculum(trainer.step - 1),
            steps_per_s=steps / seconds,
            images_per_s=steps * trainer.config.training.batch_size / seconds,
        )
        stopping = record["longest_skipped_run"] >= self.max_skipped_in_a_row
        if self.logger is not None:
            self.logger.log(record)
            shown: dict[str, float | None] = {
                k: record[k] for k in ("loss", "nll", "kl", "geco_beta") if k in record
            }
            shown.update(self.shown)
            self.bar.set_postfix({k: "nan" if v is None else f"{v:.4g}" for k, v in shown.items()})
            if record["skipped"] and not stopping:  # else the error below says it once
                say(
                    f"step {trainer.step}: skipped {record['skipped']} steps with a non-finite "
                    f"loss or gradient ({record['skipped_total']} in total)"
                )
        if stopping:
            raise NonFiniteLossError(
                f"{record['longest_skipped_run']} consecutive steps up to step {trainer.step} had "
                "a non-finite loss or gradient; stopping (the last checkpoint is intact). Lower "
                "the learning rate or check the data"
            )

    def figure(self, tag: str, figure: Any, step: int) -> None:
        """Add a figure to TensorBoard (rank 0)."""
        if self.logger is not None:
            self.logger.figure(tag, figure, step)

    def scores(self, record: dict[str, Any]) -> None:
        """Log held-out scores (rank 0)."""
        if self.logger is not None:
            self.logger.log(record, prefix="eval")


class PaceReport(Callback):
    """Once ``after`` steps are done, a line saying how long the rest of the run takes at the
    measured pace, when that is more than ``hours`` (a paper recipe started on a laptop) and
    no time budget bounds it, with what to run instead (rank 0).

    Args:
        after: steps measured before the estimate.
        hours: the remaining time from which the line is printed.
    """

    def __init__(self, after: int = 20, hours: float = 6.0) -> None:
        self.after = after
        self.hours = hours
        self._start: tuple[int, float] | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        """Remember where this call of `fit` starts."""
        self._start = (trainer.step, trainer.train_seconds)

    def on_step_end(self, trainer: Trainer, end: StepEnd) -> None:
        """After ``after`` steps: estimate, and say so if it is long."""
        if self._start is None or trainer.step != self._start[0] + self.after:
            return
        if not trainer.context.is_main or trainer.options.time_budget_s is not None:
            return
        pace = (trainer.train_seconds - self._start[1]) / self.after
        left = trainer.total_steps - trainer.step
        hours = left * pace / 3600
        if hours > self.hours:
            say(
                f"at {pace:.2f} s per step on {trainer.device}, the {left:,} steps left take "
                f"about {hours:,.0f} hours: for a shorter run pass --minutes N (a time budget) "
                "or --steps N, or a recipe sized for a CPU (the *_fast presets)"
            )


class DecompositionFigures(Callback):
    """A decomposition of the first training image at the start, every ``every`` steps and at
    the end (rank 0), to ``figures/step-NNNNNNNN.png`` and TensorBoard. Drawn with a private
    random stream, so figures never change the training noise.

    Args:
        every: steps between figures.
        log: the metrics log whose TensorBoard writer also gets the figures.
    """

    def __init__(self, every: int, log: MetricsLog | None = None) -> None:
        self.every = every
        self.log = log

    def on_train_start(self, trainer: Trainer) -> None:
        """The initialisation, for comparison (a new run only)."""
        if trainer.context.is_main and trainer.step == 0:
            self.draw(trainer)

    def on_step_end(self, trainer: Trainer, end: StepEnd) -> None:
        """On the interval and at the end."""
        if trainer.context.is_main and (end.last or trainer.step % self.every == 0):
            self.draw(trainer)

    def draw(self, trainer: Trainer) -> None:
        """Decompose the figure image with the current weights and save the figure."""
        # Imported here: matplotlib costs every run that draws no figure ~30 MB and a second.
        from pyro_emorl.viz import plot_decomposition, save_figure

        device = trainer.device
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            decomposition = decompose(
                trainer.model,
                trainer.guide,
                trainer.figure_images,
                num_steps=trainer.curriculum(max(trainer.step - 1, 0)),
                elbo=trainer.elbo,
                objective=None if trainer.geco is None else trainer.geco.objective,
            )
        figure = plot_decomposition(decomposition, trainer.figure_images)
        save_figure(figure, trainer.options.path / "figures" / f"step-{trainer.step:08d}.png")
        if self.log is not None:
            self.log.figure("decomposition", figure, trainer.step)


class HeldOutScores(Callback):
    """Held-out FG-ARI, ARI, MSE, KL, mSC and mIoU at the start, every ``every`` steps (0: only
    at the start and the end) and at the end, with the test-time refinement steps (rank 0).

    Args:
        data: held-out images with masks, one dataset or ``{name: dataset}``.
        num_images: images scored per set.
        batch_size: images per batch.
        every: steps between evaluations.
        log: where the scores go (``metrics.jsonl`` records ``"<name>/fg_ari"`` etc., the
            progress bar).
        progress: print the scores as they come.
    """

    def __init__(
        self,
        data: HeldOutData,
        num_images: int,
        batch_size: int,
        every: int,
        log: MetricsLog | None = None,
        progress: bool = True,
    ) -> None:
        self.evaluator = HeldOutEvaluator(data, num_images, batch_size)
        self.every = every
        self.log = log
        self.progress = progress

    def on_train_start(self, trainer: Trainer) -> None:
        """Score the initialisation (a new run only)."""
        if trainer.context.is_main and trainer.step == 0:
            self.score(trainer)

    def on_step_end(self, trainer: Trainer, end: StepEnd) -> None:
        """On the interval and at the end."""
        if not trainer.context.is_main:
            return
        if end.last or (self.every and trainer.step % self.every == 0):
            self.score(trainer)

    def score(self, trainer: Trainer) -> None:
        """Score the held-out sets now."""
        scores = self.evaluator(
            trainer.model,
            trainer.guide,
            num_steps=trainer.config.refinement_steps,
            objective=None if trainer.geco is None else trainer.geco.objective,
        )
        record: dict[str, Any] = {"step": trainer.step, "train_seconds": trainer.train_seconds}
        record.update(scores)
        shown = {k: v for k, v in scores.items() if k.endswith("/fg_ari")}
        if self.log is not None:
            self.log.scores(record)
            self.log.shown = shown
        if self.progress:
            say(
                f"step {trainer.step} ({trainer.train_seconds:.0f} s of training): "
                + ", ".join(
                    f"{k.replace('/', ' ')} {'undefined' if v is None else f'{v:.3f}'}"
                    for k, v in shown.items()
                )
            )


class Checkpoints(Callback):
    """A checkpoint every ``every`` steps, at the end and on a stop signal (written by rank 0,
    atomically; the ``keep`` newest are kept). Every rank takes part (the state of every rank's
    random streams is gathered).

    Args:
        every: steps between checkpoints.
        keep: checkpoints kept.
    """

    def __init__(self, every: int, keep: int) -> None:
        self.every = every
        self.keep = keep

    def on_step_end(self, trainer: Trainer, end: StepEnd) -> None:
        """Save on the interval, at the end and when interrupted."""
        if end.interrupted or end.last or trainer.step % self.every == 0:
            self.save(trainer)

    def save(self, trainer: Trainer) -> None:
        """Write a checkpoint of the current step."""
        finite = torch.stack([torch.isfinite(p).all() for p in trainer.params]).all()
        if not bool(finite):  # cannot happen (non-finite steps are skipped); never persist it
            raise NonFiniteLossError(
                f"parameters became non-finite at step {trainer.step}; no checkpoint written"
            )
        state = trainer.state_dict()
        if not trainer.context.is_main:
            return
        directory = trainer.checkpoint_dir
        path = save_checkpoint(state, checkpoint_path(directory, trainer.step))
        prune_checkpoints(directory, self.keep)
        trainer.last_checkpoint = path


def default_callbacks(trainer: Trainer, eval_data: HeldOutData | None) -> list[Callback]:
    """The library's callbacks for ``trainer.options``: stop conditions first (they decide
    whether a step is the last), then the log, figures, held-out scores and checkpoints."""
    options = trainer.options
    budget = math.inf if options.time_budget_s is None else options.time_budget_s
    callbacks: list[Callback] = [StopOnSignal()]
    if budget < math.inf:
        callbacks.insert(0, TimeBudget(budget))
    log = MetricsLog(
        options.log_every, options.max_skipped_in_a_row, options.tensorboard, options.progress
    )
    callbacks.append(log)
    callbacks.append(PaceReport())
    if options.figure_every:
        callbacks.append(DecompositionFigures(options.figure_every, log))
    if eval_data is not None and trainer.context.is_main:
        callbacks.append(
            HeldOutScores(
                eval_data,
                options.eval_images,
                options.eval_batch_size,
                options.eval_every,
                log,
                options.progress,
            )
        )
    callbacks.append(Checkpoints(options.checkpoint_every, options.keep_checkpoints))
    return callbacks


def say(message: str) -> None:
    """Print beside the progress bar, on stderr (stdout stays for what the caller prints)."""
    tqdm.write(message, file=sys.stderr)
