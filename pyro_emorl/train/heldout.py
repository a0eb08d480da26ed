"""Evaluation on held-out images while a model trains."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch.utils.data import Dataset

from pyro_emorl.evaluation.protocol import evaluate
from pyro_emorl.infer.elbo import Objective
from pyro_emorl.protocols import Guide, SceneModel

#: Metrics of `pyro_emorl.evaluation.evaluate` logged during training (``sc`` is left out:
#: it is dominated by the background, ``msc`` is the paper's).
LOGGED = ("fg_ari", "ari", "mse", "kl", "msc", "miou")

HeldOutData = Dataset | Mapping[str, Dataset]


class HeldOutEvaluator:
    """Scores a model on fixed held-out images: the first ``num_images`` of each named set.

    Args:
        data: one dataset (named ``"test"``) or ``{name: dataset}``; items are dicts with
            ``"imgs"`` ``[C, H, W]`` and ``"masks"`` ``[E, 1, H, W]``
            (`HDF5Dataset` with ``masks=True``).
        num_images: images scored per set.
        batch_size: images per forward pass.

    Raises:
        ValueError: if a set is empty or its items carry no masks.
    """

    def __init__(self, data: HeldOutData, num_images: int = 320, batch_size: int = 32) -> None:
        self.sets = dict(data) if isinstance(data, Mapping) else {"test": data}
        for name, dataset in self.sets.items():
            if len(dataset) == 0:  # type: ignore[arg-type]
                raise ValueError(f"held-out set {name!r} is empty")
            item = dataset[0]
            if not isinstance(item, Mapping) or "masks" not in item:
                raise ValueError(
                    f"held-out set {name!r} has no ground-truth masks: load it with "
                    "HDF5Dataset(path, split='test', masks=True)"
                )
        self.num_images = num_images
        self.batch_size = batch_size

    def __call__(
        self,
        model: SceneModel,
        guide: Guide,
        *,
        num_steps: int,
        objective: Objective | None = None,
    ) -> dict[str, float | None]:
        """``{"<set>/<metric>": mean, "<set>/<metric>_std": std}`` over each set's images
        (``None`` for a metric defined on none of them).

        The training RNG streams are left untouched (the evaluation draws from a forked stream),
        so a run evaluated along the way trains exactly as one that is not.
        """
        device = next(model.parameters()).device
        devices = [device] if device.type == "cuda" else []
        record: dict[str, float | None] = {}
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(0)  # the same noise at every evaluation: curves are comparable
            for name, dataset in self.sets.items():
                result = evaluate(
                    model,
                    guide,
                    self._batches(dataset),
                    num_steps=num_steps,
                    num_images=self.num_images,
                    objective=objective,
                )
                summary = result.summary()
                for metric in LOGGED:
                    record[f"{name}/{metric}"] = summary[metric]["mean"]
                    record[f"{name}/{metric}_std"] = summary[metric]["std"]
        return record

    def _batches(self, dataset: Dataset) -> Iterator[dict[str, torch.Tensor]]:
        # Plain indexing (a DataLoader would draw its worker seed from the RNG being reset).
        count = min(self.num_images, len(dataset))  # type: ignore[arg-type]
        for start in range(0, count, self.batch_size):
            items = [dataset[i] for i in range(start, min(start + self.batch_size, count))]
            yield {key: torch.stack([item[key] for item in items]) for key in ("imgs", "masks")}
