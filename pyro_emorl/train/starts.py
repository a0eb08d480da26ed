"""Several starts, the best one continued: `fit_best_start`.

Whether a run's slots take the objects early is settled in its first ~1,000 steps, and it
differs from one initialisation to the next: on Tetrominoes some seeds separate their objects
by step 1,000 and others leave every slot decoding the same blur for thousands of steps. The two
kinds are told apart without labels by how well the model explains its images — at step 1,000
the held-out reconstruction error of the first is already clearly below that of the second. So,
as k-means restarts its centres, `fit_best_start` trains a few starts for a short while, keeps
the one with the lowest negative ELBO on a fixed set of *training* images, and continues only
that one. The starts' training time counts against the run's time budget.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pyro_emorl.config import ModelConfig
from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.decompose import decompose
from pyro_emorl.io.checkpoint import load_newest_checkpoint
from pyro_emorl.protocols import Guide, SceneModel
from pyro_emorl.train.batches import batch_images
from pyro_emorl.train.heldout import HeldOutData
from pyro_emorl.train.loop import TrainResult, fit
from pyro_emorl.train.options import RunOptions

#: The file in the run directory that records the starts, their scores and the one continued.
RECORD = "starts.json"


@dataclass(frozen=True)
class StartsResult:
    """What `fit_best_start` did.

    Attributes:
        seeds: the starts' seeds, in the order they were trained.
        scores: each start's negative ELBO per image (nats) on the selection images at the
            selection step, by seed.
        best: the seed that was continued (``None`` when the starts were interrupted).
        result: the continued run's `TrainResult` (its ``out_dir`` is the best start's
            folder), or the interrupted start's.
    """

    seeds: list[int]
    scores: dict[int, float]
    best: int | None
    result: TrainResult


def start_seeds(seed: int, starts: int) -> list[int]:
    """The seeds of a run's starts: ``seed * starts`` to ``seed * starts + starts - 1``, so that
    the starts of two runs with different seeds never share an initialisation."""
    return [seed * starts + i for i in range(starts)]


def start_dir(out_dir: str | Path, seed: int) -> Path:
    """The folder of the start with ``seed`` inside the run directory ``out_dir``."""
    return Path(out_dir) / f"start-{seed}"


def check_starts(config: ModelConfig, starts: int, select_at: int) -> None:
    """Refuse fewer than one start, or a selection step outside the run's ``[1, steps]``.

    Raises:
        ValueError: naming the value and the range.
    """
    if starts < 1:
        raise ValueError(f"starts must be >= 1, got {starts}")
    if not 1 <= select_at <= config.training.steps:
        raise ValueError(
            f"select_at must be between 1 and the run's {config.training.steps} steps, "
            f"got {select_at}"
        )


def negative_elbo(
    config: ModelConfig,
    model: SceneModel,
    guide: Guide,
    images: torch.Tensor,
    batch_size: int = 32,
) -> float:
    """Mean negative ELBO per image (nats) of ``images`` ``[N, C, H, W]``, with the
    configuration's test-time refinement steps and fixed sampling noise (drawn from a forked
    random stream, so the caller's is untouched)."""
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    total = 0.0
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(0)
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            final = decompose(
                model, guide, batch, num_steps=config.refinement_steps, decode_layers=False
            ).final
            total += float((final.nll + final.kl).double().sum())
    return total / len(images)


def fit_best_start(
    config: ModelConfig,
    dataset: Dataset,
    options: RunOptions,
    *,
    starts: int = 3,
    select_at: int = 1000,
    selection_images: int | None = None,
    eval_data: HeldOutData | None = None,
) -> StartsResult:
    """Train ``starts`` initialisations for ``select_at`` steps each and continue the best.

    Start ``s`` (seeds from `start_seeds`) trains in ``options.out_dir/start-<s>/`` as a run of
    its own. At step ``select_at`` each is scored by its negative ELBO on the first
    ``selection_images`` training images (`negative_elbo`; no labels are used); the lowest is
    continued in its folder to ``config.training.steps``. ``starts.json`` in ``out_dir``
    records the seeds, the scores and the choice, and ``resume=True`` continues from it without
    choosing again. ``options.time_budget_s`` covers all the starts' training together.

    Args:
        config: the model and its training recipe.
        dataset: training images (as for `fit`).
        options: run settings; ``seed`` picks the starts' seeds, ``out_dir`` holds them.
        starts: how many initialisations to try.
        select_at: the step at which they are compared (at most ``config.training.steps``).
        selection_images: how many training images score each start (default: 256, or all
            of them if there are fewer).
        eval_data: held-out images scored along the way in every start (as for `fit`).

    Returns:
        A `StartsResult`.

    Raises:
        ValueError: for fewer than one start, a selection step outside ``[1, steps]``, or a
            ``starts.json`` written with other starts.
        FileExistsError: if ``out_dir`` holds a ``starts.json`` and ``options.resume`` is false.
    """
    check_starts(config, starts, select_at)
    count = len(dataset)  # type: ignore[arg-type]
    if selection_images is None:
        selection_images = min(256, count)
    if not 1 <= selection_images <= count:
        raise ValueError(
            f"selection_images must be between 1 and the {count} training images, "
            f"got {selection_images}"
        )
    seeds = start_seeds(options.seed, starts)
    record_path = options.path / RECORD
    record = _read_record(record_path, options, seeds, select_at)

    if record is None:
        images = torch.stack([batch_images(dataset[i]) for i in range(selection_images)])
        short = config.replace(training={"steps": select_at})
        scores: dict[int, float] = {}
        seconds: dict[int, float] = {}
        for seed in seeds:
            run = dataclasses.replace(
                options, out_dir=start_dir(options.path, seed), seed=seed, time_budget_s=None
            )
            result = fit(short, dataset, run, eval_data=eval_data)
            if result.interrupted:
                return StartsResult(seeds, scores, None, result)
            scores[seed] = negative_elbo(config, result.model, result.guide, images)
            seconds[seed] = _train_seconds(run.path)
        best = min(seeds, key=lambda s: scores[s])
        record = {
            "seeds": seeds,
            "select_at": select_at,
            "selection_images": selection_images,
            "scores": {str(s): scores[s] for s in seeds},
            "train_seconds": {str(s): seconds[s] for s in seeds},
            "best": best,
        }
        options.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(record_path) as tmp:
            tmp.write_text(json.dumps(record, indent=1) + "\n")

    best = int(record["best"])
    scores = {int(s): float(v) for s, v in record["scores"].items()}
    others = sum(float(v) for s, v in record["train_seconds"].items() if int(s) != best)
    budget = options.time_budget_s
    if budget is not None:
        # The best start's own seconds are in its checkpoint and counted by fit itself.
        budget = max(budget - others, 1e-9)
    run = dataclasses.replace(
        options, out_dir=start_dir(options.path, best), seed=best, resume=True, time_budget_s=budget
    )
    return StartsResult(seeds, scores, best, fit(config, dataset, run, eval_data=eval_data))


def _read_record(path: Path, options: RunOptions, seeds: list[int], select_at: int) -> dict | None:
    """The record of an earlier choice, checked against this call's starts; ``None`` if none."""
    if not path.is_file():
        return None
    if not options.resume:
        raise FileExistsError(
            f"{path} records the starts of another run; resume with --resume "
            "(RunOptions(resume=True)) or choose another output directory"
        )
    record = json.loads(path.read_text())
    if record["seeds"] != seeds or record["select_at"] != select_at:
        raise ValueError(
            f"{path} was written for seeds {record['seeds']} compared at step "
            f"{record['select_at']}, not seeds {seeds} at step {select_at}; resume with the "
            "same --seed, starts and selection step"
        )
    return record


def _train_seconds(run_dir: Path) -> float:
    """Training seconds recorded in a run's newest checkpoint."""
    found = load_newest_checkpoint(run_dir / "checkpoints")
    return 0.0 if found is None else float(found[1].get("train_seconds", 0.0))
