"""DCI of the slot representation: match slots to objects, pair codes with factors, score."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn

from pyro_emorl import metrics
from pyro_emorl.evaluation.protocol import upsample_masks
from pyro_emorl.metrics import FactorType
from pyro_emorl.protocols import SceneModel

#: Factors that are categories (the rest are continuous).
DISCRETE_FACTORS = frozenset({"shape", "material", "size"})
#: Factors that describe presence or pixels, not the object.
IGNORED_FACTORS = frozenset({"visibility", "pixel_coords"})
#: Column names of the single ``factors`` array of the official CLEVR files.
OFFICIAL_CLEVR_FACTORS = ("x", "y", "z", "rotation", "size", "material", "shape", "color")


def factor_table(
    factors: Mapping[str, np.ndarray] | np.ndarray,
) -> tuple[np.ndarray, list[str], list[FactorType]]:
    """Per-entity factor columns and their types.

    ``color`` is a category when every value is 0 or 1 (Tetrominoes' six saturated colours) and
    three continuous columns otherwise (Multi-dSprites' random colours); ``shape``, ``material``
    and ``size`` are categories; ``visibility`` and ``pixel_coords`` are left out. A single array
    (the official CLEVR files) takes the column names `OFFICIAL_CLEVR_FACTORS`.

    Args:
        factors: ``{name: [N, E] or [N, E, c]}``, or one array ``[N, E, F]``.

    Returns:
        ``(table [N, E, F'], names, types)`` with types ``"continuous"`` / ``"discrete"``.
    """
    if not isinstance(factors, Mapping):
        array = np.asarray(factors)
        factors = {name: array[..., i] for i, name in enumerate(OFFICIAL_CLEVR_FACTORS)}
        discrete = DISCRETE_FACTORS | {"color"}
    else:
        discrete = DISCRETE_FACTORS
    columns: list[np.ndarray] = []
    names: list[str] = []
    types: list[FactorType] = []
    for name, value in sorted(factors.items()):
        if name in IGNORED_FACTORS:
            continue
        value = np.asarray(value)
        if value.ndim == 3 and name == "color" and np.isin(value, (0, 1)).all():
            _, codes = np.unique(value.reshape(-1, value.shape[-1]), axis=0, return_inverse=True)
            columns.append(codes.reshape(value.shape[:2]).astype(np.float64))
            names.append(name)
            types.append("discrete")
        elif value.ndim == 3:
            for c in range(value.shape[-1]):
                columns.append(value[..., c].astype(np.float64))
                names.append(f"{name}_{c}")
                types.append("continuous")
        else:
            columns.append(value.astype(np.float64))
            names.append(name)
            types.append("discrete" if name in discrete else "continuous")
    if not columns:
        raise ValueError("no usable factors (only visibility / pixel coordinates were given)")
    return np.stack(columns, axis=-1), names, types


def _to_numpy(factors: Mapping[str, Tensor] | Tensor) -> Mapping[str, np.ndarray] | np.ndarray:
    if isinstance(factors, Mapping):
        return {k: v.cpu().numpy() for k, v in factors.items()}
    return factors.cpu().numpy()


def codes_from_means(
    model: SceneModel, means: Tensor, batches: Iterable[dict]
) -> tuple[np.ndarray, np.ndarray, list[str], list[FactorType]]:
    """Slot posterior means matched to ground-truth objects, with the objects' factors.

    As the official DCI evaluation: the refined posterior mean of every slot is decoded, each
    ground-truth object (at least 50 pixels) is matched to a slot by maximum IoU of the arg-max
    masks (Hungarian), matches with IoU below 0.1 are dropped.

    Args:
        model: the model (its decoder turns the means into masks).
        means: refined posterior means ``[N, K, D]`` of the first ``N`` images of ``batches``
            (``EvaluationResult.posterior_means``).
        batches: the same images' dicts with ``"masks"`` and ``"factors"`` (load the dataset
            with ``masks=True, factors=True``), in the same order.

    Returns:
        ``(codes [M, D], factors [M, F], factor names, factor types)``.
    """
    device = next(cast(nn.Module, model).parameters()).device  # the shipped models are modules
    matches = []
    raw_factors: list[Mapping[str, np.ndarray] | np.ndarray] = []
    done = 0
    for batch in batches:
        if done >= means.shape[0]:
            break
        if "masks" not in batch or "factors" not in batch:
            raise ValueError("DCI needs masks and factors: load the dataset with both")
        take = min(means.shape[0] - done, batch["masks"].shape[0])
        with torch.no_grad():
            _, mask_logits = model.decoder(means[done : done + take].to(device))
            masks = torch.softmax(mask_logits, dim=-4)
        true = batch["masks"][:take]
        if tuple(masks.shape[-2:]) != tuple(true.shape[-2:]):
            masks = upsample_masks(masks, tuple(true.shape[-2:]))
        matches += metrics.match_slots_to_objects(true.numpy(), masks.cpu().numpy())
        factors = _to_numpy(batch["factors"])
        if isinstance(factors, Mapping):
            raw_factors.append({k: v[:take] for k, v in factors.items()})
        else:
            raw_factors.append(factors[:take])
        done += take
    if done < means.shape[0]:
        raise ValueError(f"batches hold {done} images but {means.shape[0]} means were given")
    if isinstance(raw_factors[0], Mapping):
        merged: Mapping[str, np.ndarray] | np.ndarray = {
            k: np.concatenate([f[k] for f in raw_factors]) for k in raw_factors[0]
        }
    else:
        # Every batch of a dataset holds its factors the same way: here all are arrays.
        merged = np.concatenate(cast(list[np.ndarray], raw_factors))
    table, names, types = factor_table(merged)
    codes, factors = metrics.gather_matched(matches, means.double().numpy(), table)
    return codes, factors, names, types


def evaluate_dci(
    codes: np.ndarray,
    factors: np.ndarray,
    names: list[str],
    types: list[FactorType],
    seed: int = 5,
) -> dict[str, object]:
    """DCI with gradient-boosted trees (a classifier for discrete factors, a regressor for
    continuous ones), 50/50 split with seed 5 as the official evaluation; JSON-ready."""
    result = metrics.dci(codes, factors, types, test_fraction=0.5, seed=seed)
    out: dict[str, object] = {
        "disentanglement": float(result["disentanglement"]),
        "completeness": float(result["completeness"]),
        "informativeness": float(result["informativeness"]),
        "num_pairs": int(codes.shape[0]),
        "factors": dict(zip(names, types)),
    }
    out["informativeness_per_factor"] = dict(
        zip(names, (float(v) for v in np.asarray(result["informativeness_per_factor"])))
    )
    return out
