"""The paper's evaluation protocol: segmentation and reconstruction metrics over a test set."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import SupportsInt, cast

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from pyro_emorl import metrics
from pyro_emorl.decompose import StepDecomposition, decompose
from pyro_emorl.infer.elbo import Objective
from pyro_emorl.protocols import Guide, SceneModel

METRICS = ("fg_ari", "ari", "mse", "kl", "sc", "msc", "miou")
"""Metrics reported per image, in table order."""

CLEVRTEX_METRICS = ("count_acc", "dice", "dice_fg")
"""The extra metrics of the ClevrTex evaluator (``CLEVRTEX_Evaluator`` of
github.com/karazijal/clevrtex-generation), reported after `METRICS` with ``clevrtex=True``:
count accuracy, DICE and foreground DICE (see
[count_accuracy][pyro_emorl.metrics.count_accuracy.count_accuracy] and
[dice][pyro_emorl.metrics.dice.dice])."""


def upsample_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize mask probabilities with PIL's bicubic filter, as the official CLEVR evaluation does.

    Args:
        masks: ``[B, K, 1, h, w]`` probabilities.
        size: target ``(H, W)`` (192x192 for the CLEVR protocol).

    Returns:
        ``[B, K, 1, H, W]`` float32 (not renormalised; only the arg-max over ``K`` is used).
    """
    array = masks.detach().cpu().to(torch.float32).numpy()
    out = np.empty((*array.shape[:3], *size), dtype=np.float32)
    for b, k in np.ndindex(array.shape[0], array.shape[1]):
        image = Image.fromarray(array[b, k, 0], mode="F")
        out[b, k, 0] = np.asarray(image.resize((size[1], size[0]), Image.Resampling.BICUBIC))
    return torch.from_numpy(out)


@dataclass
class EvaluationResult:
    """Per-image metrics and their summary.

    Attributes:
        per_image: ``{metric: [N]}`` float64; ``fg_ari`` and ``ari`` are fractions in [-1, 1],
            ``mse`` on the [0, 1] scale, ``kl`` in nats summed over slots and dims, ``sc``,
            ``msc`` and ``miou`` fractions (NaN for an image without objects); with the
            ClevrTex metrics also ``count_acc`` (0 or 1), ``dice`` and ``dice_fg`` fractions.
        settings: how the numbers were obtained (refinement steps, slots, images, seed) and
            ``max_objects``, the most foreground objects in one scored image.
        posterior_means: refined posterior mean of every slot ``[N, K, D]`` (for DCI).
        num_objects: foreground objects (non-empty ground-truth masks other than entity 0) of
            every image ``[N]``.
    """

    per_image: dict[str, np.ndarray]
    settings: dict[str, object] = field(default_factory=dict)
    posterior_means: Tensor | None = None
    num_objects: np.ndarray | None = None

    def slot_warning(self) -> str | None:
        """A line saying that FG-ARI is bounded, if some images hold more objects than ``K``.

        With ``K`` slots at most ``K`` objects of an image can be told apart, so an image with
        more cannot reach FG-ARI 1 however good the model. ``None`` when ``K`` suffices.
        """
        if self.num_objects is None or not self.num_objects.size:
            return None
        slots = int(cast(SupportsInt, self.settings["num_slots"]))  # `evaluate` records an int
        most = int(self.num_objects.max())
        over = int((self.num_objects > slots).sum())
        if over == 0:
            return None
        return (
            f"FG-ARI is bounded: K={slots} slots, but {over} of {self.num_objects.size} images "
            f"hold more objects (up to {most}), which {slots} slots cannot all separate; use "
            f"--num-slots {most + 1} (num_slots={most + 1}: one slot per object and one for the "
            "background)"
        )

    def summary(self) -> dict[str, dict[str, float | int | None]]:
        """Mean and standard deviation over the images where a metric is defined, per metric,
        with their ``count``; ``None`` (``null`` in JSON) when it is defined for none."""
        out: dict[str, dict[str, float | int | None]] = {}
        for name, values in self.per_image.items():
            finite = values[~np.isnan(values)]
            mean = float(finite.mean()) if finite.size else None
            std = float(finite.std()) if finite.size else None
            out[name] = {"mean": mean, "std": std, "count": int(finite.size)}
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: settings, summary and per-image values (``None`` where a metric is
        undefined for an image)."""
        return {
            "settings": self.settings,
            "summary": self.summary(),
            "per_image": {
                k: [None if math.isnan(x) else float(x) for x in v]
                for k, v in self.per_image.items()
            },
        }

    def table(self) -> str:
        """A one-screen text table of the summary."""
        width = max(8, *(len(name) for name in self.per_image))
        lines = [f"{'metric':<{width}} {'mean':>12} {'std':>12} {'images':>7}"]
        for name, s in self.summary().items():
            mean, std = ("undefined" if v is None else f"{v:.6g}" for v in (s["mean"], s["std"]))
            lines.append(f"{name:<{width}} {mean:>12} {std:>12} {s['count']:>7d}")
        return "\n".join(lines)


def evaluate_batch(
    model: SceneModel,
    guide: Guide,
    images: Tensor,
    true_masks: Tensor,
    *,
    num_steps: int,
    num_slots: int | None = None,
    objective: Objective | None = None,
    clevrtex: bool = False,
) -> dict[str, np.ndarray]:
    """Metrics of one batch.

    The predicted masks and the reconstruction are those of the last refinement step (decoded
    from a sample of the refined posterior, as the official evaluation does). Masks are compared
    at the ground truth's resolution: predictions are upsampled with PIL bicubic when it differs
    (the CLEVR protocol compares at 192x192).

    Args:
        model: the model.
        guide: the guide.
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        true_masks: ``[B, E, 1, H', W']`` 0/1 (entity 0 is the background).
        num_steps: refinement steps ``I``.
        num_slots: ``K`` (default: the model's).
        objective: refinement objective (default: the ELBO).
        clevrtex: also the ClevrTex evaluator's `CLEVRTEX_METRICS`.

    Returns:
        ``{metric: [B]}``.
    """
    out = decompose(
        model,
        guide,
        images,
        num_steps=num_steps,
        num_slots=num_slots,
        objective=objective,
        decode_layers=False,
    )
    return score(out.final, images, true_masks, clevrtex=clevrtex)


def score(
    final: StepDecomposition, images: Tensor, true_masks: Tensor, *, clevrtex: bool = False
) -> dict[str, np.ndarray]:
    """The metrics of a decoded step against ground truth (see `evaluate_batch`)."""
    pred = final.masks
    height, width = true_masks.shape[-2:]
    if tuple(pred.shape[-2:]) != (height, width):
        pred = upsample_masks(pred, (height, width))
    true_np = true_masks.detach().cpu().numpy()
    pred_np = pred.detach().cpu().numpy()
    values = {
        "fg_ari": metrics.ari(true_np, pred_np, exclude_background=True),
        "ari": metrics.ari(true_np, pred_np, exclude_background=False),
        "mse": metrics.mse(images, final.reconstruction),
        "kl": final.kl.detach().cpu().double().numpy(),
        "sc": metrics.segmentation_covering(true_np, pred_np, mean=False),
        "msc": metrics.segmentation_covering(true_np, pred_np, mean=True),
        "miou": metrics.mean_iou(true_np, pred_np),
    }
    if clevrtex:
        values["count_acc"] = metrics.count_accuracy(true_np, pred_np)
        values["dice"] = metrics.dice(true_np, pred_np)
        values["dice_fg"] = metrics.dice(true_np, pred_np, exclude_background=True)
    return values


def evaluate(
    model: SceneModel,
    guide: Guide,
    batches: Iterable[dict[str, Tensor]],
    *,
    num_steps: int,
    num_images: int = 320,
    num_slots: int | None = None,
    objective: Objective | None = None,
    progress: Callable[[int], None] | None = None,
    clevrtex: bool = False,
) -> EvaluationResult:
    """Evaluate on the first ``num_images`` images of ``batches`` (the paper uses 320).

    Args:
        model: the model.
        guide: the guide.
        batches: dicts with ``"imgs"`` ``[B, C, H, W]`` in [0, 1] and ``"masks"``
            ``[B, E, 1, H, W]`` (a DataLoader over `pyro_emorl.data.HDF5Dataset` with
            ``masks=True``).
        num_steps: refinement steps ``I`` at test time.
        num_images: how many images to score.
        num_slots: ``K`` at test time (default: the model's).
        objective: objective driving refinement (default: the ELBO).
        progress: called with the number of images done after each batch.
        clevrtex: also report the ClevrTex evaluator's `CLEVRTEX_METRICS` (the official
            ClevrTex evaluation scores every test image, 5,000 of the full variant, at the
            model's 128x128).

    Returns:
        An `EvaluationResult`.
    """
    device = next(cast(nn.Module, model).parameters()).device  # the shipped models are modules
    names = (*METRICS, *CLEVRTEX_METRICS) if clevrtex else METRICS
    collected: dict[str, list[np.ndarray]] = {name: [] for name in names}
    means = []
    objects: list[np.ndarray] = []
    done = 0
    for batch in batches:
        if done >= num_images:
            break
        if "masks" not in batch:
            raise ValueError(
                "evaluation needs ground-truth masks: load the dataset with masks=True"
            )
        take = min(num_images - done, batch["imgs"].shape[0])
        images = batch["imgs"][:take].to(device)
        out = decompose(
            model,
            guide,
            images,
            num_steps=num_steps,
            num_slots=num_slots,
            objective=objective,
            decode_layers=False,
        )
        masks = batch["masks"][:take]
        values = score(out.final, images, masks, clevrtex=clevrtex)
        means.append(out.final.loc.cpu())
        objects.append(count_objects(masks))
        for name in names:
            collected[name].append(np.asarray(values[name], dtype=np.float64))
        done += take
        if progress is not None:
            progress(done)
    if done == 0:
        raise ValueError("no images to evaluate")
    per_image = {name: np.concatenate(v) for name, v in collected.items()}
    num_objects = np.concatenate(objects)
    settings: dict[str, object] = {
        "num_images": done,
        "refine_steps": num_steps,
        "num_slots": num_slots if num_slots is not None else model.num_slots,
        "max_objects": int(num_objects.max()),
    }
    return EvaluationResult(per_image, settings, torch.cat(means), num_objects)


def count_objects(masks: Tensor) -> np.ndarray:
    """Foreground objects per image: the non-empty masks ``[B, E, 1, H, W]`` after entity 0
    (the background). ``[B]`` int64."""
    if masks.shape[1] <= 1 or masks.numel() == 0:
        return np.zeros(masks.shape[0], dtype=np.int64)
    foreground = masks[:, 1:].flatten(start_dim=2)
    return (foreground.amax(dim=-1) > 0).sum(dim=-1).cpu().numpy().astype(np.int64)
