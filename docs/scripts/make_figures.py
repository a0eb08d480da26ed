"""Draw the figures of the documentation into ``docs/figures/``.

Run from the repository root::

    python docs/scripts/make_figures.py            # the quick figures
    python docs/scripts/make_figures.py overview   # only some
    python docs/scripts/make_figures.py --out /tmp/figures   # somewhere else
    python docs/scripts/make_figures.py results    # the Results page (minutes, see below)

Everything is computed here, from the library: the data panels come from the Multi-dSprites and
Tetrominoes generators (seed 0), the schedules from ``pyro_emorl.infer``, the GECO numbers from
``pyro_emorl.infer.GECO`` and ``pyro_emorl.presets``; ``scenes`` (the README's picture) runs
the shipped Tetrominoes model on five held-out scenes. The quick figures take a few seconds on a
CPU. The PNGs are small (tens of KB) and committed.

``results-figures`` redraws the Results page's figures from
``docs/figures/results_tetrominoes.json`` and the shipped model without scoring anything again
(seconds)::

    python docs/scripts/make_figures.py results-figures

``results`` is not among the quick figures: it scores the shipped Tetrominoes model
(``pe.load_pretrained("tetrominoes")``) on freshly generated held-out scenes and on the real
DeepMind records of ``tests/fixtures/real/``, sweeps the test-time refinement steps ``I`` and
slots ``K``, draws the model's decompositions, and writes the numbers to
``docs/figures/results_tetrominoes.json`` and into ``docs/results.md`` (between its
``<!-- results:NAME:begin -->`` / ``<!-- results:NAME:end -->`` markers). ``--images`` and
``--sweep-images`` make it small.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from pyro_emorl import presets  # noqa: E402
from pyro_emorl.data import HDF5Dataset, generate  # noqa: E402
from pyro_emorl.infer import official_lr_factor, step_weights  # noqa: E402
from pyro_emorl.infer.geco import HALF_LOG_2PI  # noqa: E402

if TYPE_CHECKING:
    from pyro_emorl.io import LoadedModel

#: Where the committed figures live (``--out`` writes elsewhere).
OUT = Path(__file__).resolve().parents[1] / "figures"
DPI = 100


def _sample_scene(name: str, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One generated scene: image [H, W, 3] in [0, 1] and entity masks [E, H, W] in {0, 1}."""
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(name, Path(tmp) / f"{name}.h5", num_train=0, num_test=8, progress=False)
        item = HDF5Dataset(path, "test", masks=True)[index]
        image = item["imgs"].permute(1, 2, 0).numpy()
        masks = item["masks"][:, 0].numpy()
    return image, masks


def _label_map(masks: np.ndarray) -> np.ndarray:
    """Entity index per pixel (later entities win), like the evaluation code."""
    labels = np.zeros(masks.shape[1:], dtype=int)
    for e in range(masks.shape[0]):
        labels[masks[e] > 0.5] = e
    return labels


# Segmentation colours: light grey for the background (label 0), then matplotlib's tab10.
SEGMENT_COLORS = matplotlib.colors.ListedColormap(["0.85", *plt.get_cmap("tab10").colors[:9]])


def _show_labels(ax: Axes, labels: np.ndarray) -> None:
    ax.imshow(labels, cmap=SEGMENT_COLORS, vmin=-0.5, vmax=9.5, interpolation="nearest")


def _frame(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color("0.7")


def _box(
    ax: Axes,
    xy: tuple[float, float],
    w: float,
    h: float,
    text: str,
    color: str,
    fontsize: float = 9,
) -> None:
    ax.add_patch(
        FancyBboxPatch(
            xy, w, h, boxstyle="round,pad=0.02,rounding_size=0.05", fc=color, ec="0.3", lw=0.8
        )
    )
    ax.text(xy[0] + w / 2, xy[1] + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    color: str = "0.25",
    style: str = "-|>",
    ls: str = "-",
    rad: float = 0.0,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=10,
            color=color,
            lw=1.0,
            ls=ls,
            connectionstyle=f"arc3,rad={rad}",
        )
    )


def overview(out: Path = OUT) -> Path:
    """The home page picture: a scene, the inference pipeline, and the slot decomposition."""
    image, masks = _sample_scene("multi_dsprites", index=5)
    labels = _label_map(masks)
    present = [e for e in range(masks.shape[0]) if masks[e].sum() > 0]

    fig = plt.figure(figsize=(11, 4.4))
    ax = fig.add_axes([0.005, 0.36, 0.12, 0.3])
    ax.imshow(image)
    ax.set_title("image x", fontsize=9)
    ax.axis("off")

    # Middle: the pipeline. Guide column (blue), prior column (orange) aligned layer by layer.
    ax = fig.add_axes([0.13, 0.0, 0.64, 1.0])
    ax.set_xlim(0, 11)
    ax.set_ylim(-0.1, 7)
    ax.axis("off")
    guide, prior, refine, decode = "#dbe8f6", "#f6e3d4", "#e2f0d9", "#efe3f3"
    _box(ax, (0.05, 3.3), 1.5, 1.0, "CNN encoder\n+ positions\n(run once)", guide, 8)
    ax.text(
        0.8,
        2.7,
        "keys/values\nfor slot attention",
        ha="center",
        va="center",
        fontsize=7,
        color="0.35",
    )
    gx, px = 2.1, 4.5
    _box(ax, (gx, 5.5), 1.7, 0.75, "z⁰ ~ N(μ⁰, σ⁰) per slot\n(symmetry breaking)", guide, 7)
    rows = (4.2, 2.9, 1.6)
    sup = "¹²³"
    for i, y in enumerate(rows):
        _box(ax, (gx, y), 1.7, 0.75, f"q(z{sup[i]} | x, z{'⁰¹²'[i]})", guide, 8)
    for y0, y1 in ((5.5, 4.95), (4.2, 3.65), (2.9, 2.35)):
        _arrow(ax, (gx + 0.85, y0), (gx + 0.85, y1))
    for y in rows:
        _arrow(ax, (1.55, 3.8), (gx, y + 0.37), color="0.6")
    ax.text(
        gx + 0.85,
        6.55,
        "bottom-up guide: L layers,\nshared weights (slot attention,\nDualGRU, MLPs)",
        ha="center",
        va="center",
        fontsize=7,
        color="0.3",
    )
    # Reversed prior: N(0, I) at the top layer, conditionals downwards (drawn upwards here).
    labels_prior = ("p(z¹ | z²)", "p(z² | z³)", "p(z³) = N(0, I)")
    for y, text in zip(rows, labels_prior):
        _box(ax, (px, y), 1.6, 0.75, text, prior, 8)
        _arrow(ax, (gx + 1.7, y + 0.37), (px, y + 0.37), color="0.55", style="<|-|>", ls=":")
    for y0, y1 in ((2.35, 2.9), (3.65, 4.2)):
        _arrow(ax, (px + 0.8, y0), (px + 0.8, y1), color="#b05d1e")
    ax.text(
        px + 0.8,
        5.4,
        "reversed hierarchical\nprior; ⋯ = KL per layer",
        ha="center",
        va="center",
        fontsize=7,
        color="0.3",
    )
    # Refinement, decoder, likelihood along the bottom.
    _box(
        ax,
        (gx, -0.05),
        2.3,
        1.05,
        "refinement × I (top layer)\nλ ← λ + f(λ, LN ∇λ ℒ)\nKL vs p(z¹ | z²) ('prior++')",
        refine,
        7,
    )
    _arrow(ax, (gx + 0.85, 1.6), (gx + 0.85, 1.0))
    _box(ax, (5.3, -0.05), 1.7, 1.05, "spatial-broadcast\ndecoder, per slot", decode, 8)
    _arrow(ax, (gx + 2.3, 0.5), (5.3, 0.5))
    ax.text(4.85, 0.62, "z^L", ha="center", fontsize=7, color="0.3")
    _box(
        ax,
        (7.4, -0.05),
        2.0,
        1.05,
        "RGB μₖ, masks πₖ\n(softmax over slots)\n→ p(x | z^L)",
        decode,
        7,
    )
    _arrow(ax, (7.0, 0.5), (7.4, 0.5))
    ax.text(
        8.4,
        3.4,
        "loss = Σᵣ wᵣ (NLLᵣ + KLᵣ)\nr = 0 amortized,\nr = 1 … I refined;\nGECO optional",
        ha="center",
        va="center",
        fontsize=8,
    )

    # Right: a decomposition into slots (ground truth of this scene).
    ax = fig.add_axes([0.8, 0.52, 0.17, 0.36])
    _show_labels(ax, labels)
    ax.set_title("output: K slots\nsegmentation argmaxₖ πₖ", fontsize=8)
    ax.axis("off")
    n = len(present)
    width = 0.19 / 3
    for j, e in enumerate(present):
        row, col = divmod(j, 3)
        ax = fig.add_axes(
            [
                0.8 + col * width,
                0.27 - row * (width * 11 / 4.4),
                width - 0.004,
                width * 11 / 4.4 - 0.01,
            ]
        )
        ax.imshow(image * masks[e][..., None] + (1 - masks[e][..., None]))
        _frame(ax)
    fig.text(0.885, 0.015, f"{n} slots πₖ·μₖ (ground truth shown)", ha="center", fontsize=7)
    path = out / "overview.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def datasets(out: Path = OUT) -> Path:
    """Generated scenes and their ground-truth segmentations."""
    fig, axes = plt.subplots(2, 6, figsize=(9, 3.3))
    for row, (name, title) in enumerate(
        (("multi_dsprites", "Multi-dSprites"), ("tetrominoes", "Tetrominoes"))
    ):
        for j in range(3):
            image, masks = _sample_scene(name, index=j)
            axes[row, 2 * j].imshow(image)
            _show_labels(axes[row, 2 * j + 1], _label_map(masks))
        axes[row, 0].set_title(f"{title}: image", fontsize=8, loc="left")
        axes[row, 1].set_title("ground-truth masks", fontsize=8, loc="left")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    path = out / "datasets.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def schedules(out: Path = OUT) -> Path:
    """Step weights, learning rate, and GECO's multiplier on Tetrominoes."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.0))

    ax = axes[0]
    for i, num_steps in enumerate((1, 3)):
        for scheme, marker in (("official", "o"), ("paper", "s")):
            w = step_weights(num_steps, scheme)
            ax.plot(
                range(num_steps + 1),
                w,
                marker=marker,
                label=f"{scheme}, I={num_steps}",
                color=f"C{i}",
                ls="-" if scheme == "official" else "--",
            )
    ax.set_xlabel("step r (0 = amortized)")
    ax.set_ylabel("weight w_r")
    ax.set_title("refinement step weights", fontsize=9)
    ax.legend(fontsize=7)

    ax = axes[1]
    steps = np.arange(0, 300_001, 500)
    training = presets.multi_dsprites().training
    lr = [training.lr * official_lr_factor(int(s)) for s in steps]
    ax.plot(steps / 1000, lr)
    ax.axvline(100, color="0.6", ls=":")
    ax.text(102, max(lr) * 0.95, "I: 3 → 1\n(Multi-dSprites,\nCLEVR6)", fontsize=7, va="top")
    ax.set_xlabel("training step (thousands)")
    ax.set_ylabel("learning rate")
    ax.set_title("official LR schedule (warm-up 10K, half-life 100K)", fontsize=9)

    ax = axes[2]
    config = presets.tetrominoes()
    geco = config.geco
    elements = math.prod(config.image_shape)
    target = (geco.target_per_element + HALF_LOG_2PI) * elements
    floor = (config.log_scale + HALF_LOG_2PI) * elements  # NLL of a perfect reconstruction
    gap = target - floor  # the best possible C - NLL, negative: the target is out of reach
    s = np.arange(0, 200_001, 1000)
    growth = geco.step_size * -gap  # per step, at least
    beta_min = np.where(s > geco.warm_start, 0.55 + growth * (s - geco.warm_start), 0.55)
    ax.plot(s / 1000, np.log1p(np.exp(beta_min)))
    ax.set_xlabel("training step (thousands)")
    ax.set_ylabel("softplus(β), lower bound")
    ax.set_title("GECO on Tetrominoes: target below NLL floor", fontsize=9)
    label = f"target {target:.0f} nats < floor {floor:.0f}\nβ grows ≥ {growth:.2e}/step"
    ax.text(5, 0.8 * np.log1p(np.exp(beta_min[-1])), label, fontsize=7)
    fig.tight_layout()
    path = out / "schedules.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


FIGURES = {"overview": overview, "datasets": datasets, "schedules": schedules}


# ---------------------------------------------------------------------------------------------
# The Results page: the shipped Tetrominoes model, scored and drawn.

ROOT = Path(__file__).resolve().parents[2]
#: The page whose marked regions ``results`` rewrites.
PAGE = ROOT / "docs" / "results.md"
#: The 10 real DeepMind Tetrominoes records that travel with the tests.
REAL_RECORDS = ROOT / "tests" / "fixtures" / "real" / "tetrominoes_mini.tfrecords"
#: Generator seed of the held-out scenes (the training data are ``default_dataset``'s, seed 0).
HELDOUT_SEED = 11
#: torch seed set before every inference pass (the slots start from random samples).
INFERENCE_SEED = 0
#: Test-time refinement steps and slot counts of the sweeps.
SWEEP_STEPS = (0, 1, 2, 3, 4, 5, 6)
SWEEP_SLOTS = (2, 3, 4, 5, 6)
#: Refinement steps drawn in the inference-steps panel (at least the model's own I).
PANEL_STEPS = 3
#: Published numbers, only as the repository's docs state them (fractions, not percent).
PAPER = [
    {
        "source": "paper Table 1, EfficientMORL on Tetrominoes (I = 3; mean ± sd over 5 seeds)",
        "fg_ari": {"mean": 0.982, "std": 0.018},
    },
    {
        "source": "official README, the released Tetrominoes model",
        "fg_ari": {"mean": 0.997},
        "mse": {"mean": 2.76e-4},
        "kl": {"mean": 70.7},
    },
]
TABLE_METRICS = (
    ("fg_ari", "FG-ARI"),
    ("ari", "ARI"),
    ("mse", "MSE"),
    ("kl", "KL (nats)"),
    ("miou", "mIoU"),
    ("msc", "mSC"),
)
SET_TITLES = {"generated": "generated Tetrominoes", "real": "real DeepMind Tetrominoes"}


def _round(value: float, digits: int = 6) -> float:
    """``value`` to ``digits`` significant digits (keeps the JSON diffs readable)."""
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value


def _stats(values: np.ndarray) -> dict[str, float]:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[~np.isnan(finite)]
    return {
        "mean": _round(float(finite.mean())),
        "std": _round(float(finite.std())),
        "count": int(finite.size),
    }


def _heldout_sets(directory: Path, num_images: int) -> dict[str, object]:
    """The held-out generated scenes and the real records, as test splits with masks."""
    from pyro_emorl.data import convert

    generated = generate(
        "tetrominoes", directory / "heldout.h5", 0, num_images, seed=HELDOUT_SEED, progress=False
    )
    real = directory / "real.h5"
    convert("tetrominoes", REAL_RECORDS, real, num_train=0, num_test=10, progress=False)
    return {
        "generated": HDF5Dataset(generated, "test", masks=True),
        "real": HDF5Dataset(real, "test", masks=True),
    }


def _score(
    loaded: LoadedModel,
    dataset: HDF5Dataset,
    num_images: int,
    num_steps: int,
    num_slots: int | None = None,
) -> dict[str, object]:
    """The evaluation protocol (``pyro_emorl.evaluation``: metrics of the last step) on the first
    ``num_images`` images, plus the slots that own pixels and the CPU seconds of inference per
    image (process time, all threads: unlike wall-clock time, not inflated by other processes)."""
    import time

    import torch
    from torch.utils.data import DataLoader

    from pyro_emorl import decompose
    from pyro_emorl.evaluation import METRICS
    from pyro_emorl.evaluation.protocol import score

    torch.manual_seed(INFERENCE_SEED)
    objective = loaded.refinement_objective()
    collected: dict[str, list[np.ndarray]] = {name: [] for name in (*METRICS, "slots_used")}
    done, seconds = 0, 0.0
    for batch in DataLoader(dataset, batch_size=32):
        if done >= num_images:
            break
        take = min(num_images - done, batch["imgs"].shape[0])
        images, masks = batch["imgs"][:take], batch["masks"][:take]
        start = time.process_time()
        with torch.no_grad():
            out = decompose(
                loaded.model,
                loaded.guide,
                images,
                num_steps=num_steps,
                num_slots=num_slots,
                objective=objective,
                decode_layers=False,  # as `evaluate`: the scores need the last step only
            )
        seconds += time.process_time() - start
        for name, values in score(out.final, images, masks).items():
            collected[name].append(np.asarray(values, dtype=np.float64))
        owners = out.final.masks.argmax(dim=1).flatten(1)  # [B, H*W] slot per pixel
        collected["slots_used"].append(np.array([float(torch.unique(o).numel()) for o in owners]))
        done += take
    row = {name: _stats(np.concatenate(v)) for name, v in collected.items()}
    row["cpu_seconds_per_image"] = _round(seconds / done, 3)
    return row


def _curve(log: Path) -> list[dict[str, object]]:
    """The held-out evaluations of the training log: step, training minutes, scores per set."""
    from pyro_emorl.train import read_metrics

    curve = []
    for record in read_metrics(log):
        sets = sorted({key.split("/")[0] for key in record if key.endswith("/fg_ari")})
        if not sets:
            continue
        entry: dict[str, object] = {
            "step": record["step"],
            "train_minutes": _round(record["train_seconds"] / 60, 4),
        }
        for name in sets:
            entry[name] = {
                key: _round(record[f"{name}/{key}"])
                for key in ("fg_ari", "fg_ari_std", "mse", "kl")
                if f"{name}/{key}" in record
            }
        curve.append(entry)
    return curve


def _model_summary(name: str, path: Path, loaded: LoadedModel) -> dict[str, object]:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    config = loaded.config
    mine = config.to_dict()
    recipe = next(
        (
            preset
            for preset in presets.names()
            if presets.get(preset).to_dict() | {"training": mine["training"]} == mine
        ),
        None,
    )
    training = config.training
    try:
        shown = str(path.relative_to(ROOT))
    except ValueError:
        shown = str(path)
    return {
        "name": name,
        "file": shown,
        "recipe": recipe,
        "step": int(checkpoint.get("step", 0)),
        "train_minutes": _round(float(checkpoint.get("train_seconds", math.nan)) / 60, 4),
        "batch_size": training.batch_size,
        "images_seen": int(checkpoint.get("step", 0)) * training.batch_size,
        "train_refinement_steps": sorted({steps for _, steps in training.curriculum}),
        "test_refinement_steps": config.refinement_steps,
        "num_slots": config.num_slots,
        "z_dim": config.z_dim,
        "num_layers": config.num_layers,
    }


def _draw_sweeps(results: dict, path: Path) -> Path:
    """FG-ARI, MSE, KL (and cost, slots used) against I and K: mean ± standard error."""
    fig, axes = plt.subplots(2, 4, figsize=(9.6, 6.2))
    trained_i = results["model"]["test_refinement_steps"]
    trained_k = results["model"]["num_slots"]
    for row, (key, rows, label, trained) in enumerate(
        (
            (
                "num_steps",
                results["sweep_steps"]["rows"],
                "test-time refinement steps I",
                trained_i,
            ),
            ("num_slots", results["sweep_slots"]["rows"], "test-time slots K", trained_k),
        )
    ):
        x = np.array([r[key] for r in rows])
        last = (
            ("cpu_seconds_per_image", "CPU s / image") if row == 0 else ("slots_used", "slots used")
        )
        for col, (metric, title) in enumerate(
            (("fg_ari", "FG-ARI"), ("mse", "MSE"), ("kl", "KL (nats)"), last)
        ):
            ax = axes[row, col]
            if metric == "cpu_seconds_per_image":
                y, err = np.array([r[metric] for r in rows]), None
            else:
                y = np.array([r[metric]["mean"] for r in rows])
                err = np.array([r[metric]["std"] / math.sqrt(r[metric]["count"]) for r in rows])
            shown = np.ones(len(x), bool)
            if metric == "kl" and key == "num_steps":
                shown = x > 0  # step 0's KL is the hierarchical KL of all layers
                ax.plot(x[~shown], y[~shown], "o", mfc="none", color="C0")
                ax.annotate(
                    "I = 0: all layers,\nnot comparable",
                    (x[~shown][0], y[~shown][0]),
                    xytext=(0.15, 0.72),
                    textcoords="axes fraction",
                    fontsize=9,
                    arrowprops={"arrowstyle": "-", "color": "0.5"},
                )
            ax.errorbar(
                x[shown], y[shown], yerr=None if err is None else err[shown], marker="o", ms=4
            )
            ax.axvline(trained, color="0.6", ls=":", lw=1)
            ax.set_xticks(x)
            ax.set_xlabel(label.replace("test-time ", ""), fontsize=10)
            ax.set_title(title, fontsize=11)
            ax.tick_params(labelsize=10)
        if row == 0:
            axes[row, 3].set_ylim(bottom=0)
    sweep = results["sweep_steps"]
    fig.suptitle(
        f"{sweep['num_images']} held-out scenes; test-time I (top) and K (bottom); "
        "mean ± s.e.; dotted: as trained",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _draw_curve(results: dict, path: Path) -> Path:
    """Held-out FG-ARI of the training log against steps and training minutes; MSE against steps."""
    curve = results["curve"]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    steps = np.array([c["step"] for c in curve])
    minutes = np.array([c["train_minutes"] for c in curve])
    sets = [name for name in SET_TITLES if name in curve[-1]]
    for i, name in enumerate(sets):
        mean = np.array([c[name]["fg_ari"] for c in curve])
        for ax, x in ((axes[0], steps), (axes[1], minutes)):
            ax.plot(x, mean, marker="o", ms=3, color=f"C{i}", label=SET_TITLES[name])
            if "fg_ari_std" in curve[-1][name]:
                std = np.array([c[name]["fg_ari_std"] for c in curve])
                ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.15, lw=0)
        axes[2].plot(
            steps, [c[name]["mse"] for c in curve], marker="o", ms=3, color=f"C{i}", label=name
        )
    for ax, xlabel in zip(axes, ("training step", "training minutes", "training step")):
        ax.set_xlabel(xlabel, fontsize=10)
        ax.tick_params(labelsize=10)
    axes[0].set_ylabel("held-out FG-ARI (band: ± sd)", fontsize=10)
    axes[0].legend(fontsize=9)
    axes[1].set_title("FG-ARI, training time only", fontsize=10)
    axes[2].set_ylabel("MSE", fontsize=10)
    axes[2].legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _draw_model(loaded: LoadedModel, sets: dict[str, HDF5Dataset], out: Path) -> list[Path]:
    """Decompositions, the inference steps with attention, a traversal and prior samples."""
    import torch

    from pyro_emorl import decompose
    from pyro_emorl.viz import (
        latent_traversal,
        plot_decomposition,
        plot_inference_steps,
        plot_samples,
        plot_traversal,
        sample_scenes,
        save_figure,
    )

    model, guide = loaded.model, loaded.guide
    objective = loaded.refinement_objective()
    num_steps = loaded.config.refinement_steps
    written = []
    for name, count in (("generated", 3), ("real", 1)):
        dataset = sets[name]
        images = torch.stack([dataset[i]["imgs"] for i in range(count)])
        torch.manual_seed(INFERENCE_SEED)
        with torch.no_grad():
            out_ = decompose(model, guide, images, num_steps=num_steps, objective=objective)
        for i in range(count):
            figure = plot_decomposition(out_, images, i)
            written.append(save_figure(figure, out / f"results_decomposition_{name}_{i}.png"))
        if name == "generated":
            scene = out_.final.loc[0]
            true = dataset[0]["masks"][:, 0]  # [E, H, W]; entity 0 is the background
            owners = out_.final.masks[0, :, 0].argmax(dim=0)  # [H, W]
            foreground = true[1:].sum(dim=0) > 0.5
            k = out_.final.masks.shape[1]
            slot = int(torch.bincount(owners[foreground], minlength=k).argmax())
    images = torch.stack([sets["generated"][0]["imgs"]])
    torch.manual_seed(INFERENCE_SEED)
    with torch.no_grad():
        steps = decompose(
            model, guide, images, num_steps=max(PANEL_STEPS, num_steps), objective=objective
        )
    written.append(save_figure(plot_inference_steps(steps, images, 0), out / "results_steps.png"))
    traversal = latent_traversal(model, scene, slot, num_dims=5)
    written.append(save_figure(plot_traversal(traversal), out / "results_traversal.png"))
    torch.manual_seed(INFERENCE_SEED)
    samples = sample_scenes(model, 16)
    written.append(save_figure(plot_samples(samples), out / "results_prior_samples.png"))
    return written


def _cell(stats: dict | None, metric: str) -> str:
    if stats is None:
        return ""
    spec = {"mse": ".3g", "kl": ".1f"}.get(metric, ".3f")  # MSE: 0.0193, 0.000276
    text = format(stats["mean"], spec)
    if "std" in stats:
        text += f" ± {format(stats['std'], spec)}"
    return text


def render_sections(results: dict) -> dict[str, str]:
    """The Markdown of each marked region of ``docs/results.md``, from the results JSON alone."""
    m = results["model"]
    recipe = f"the `{m['recipe']}` preset" if m["recipe"] else "a custom configuration"
    paper_images = 200_000 * 32
    trained = ", ".join(str(i) for i in m["train_refinement_steps"])
    step_word = "step" if m["train_refinement_steps"] == [1] else "steps"
    env = results["environment"]
    threads = f"{env['threads']} torch thread" + ("" if env["threads"] == 1 else "s")
    model = (
        f"`{m['file']}`: {recipe}, K = {m['num_slots']} slots, D = {m['z_dim']}, "
        f"L = {m['num_layers']} layers, trained with I = {trained} refinement {step_word} and "
        f"evaluated with I = {m['test_refinement_steps']}. **{m['step']:,} training steps** of "
        f"{m['batch_size']} images ({m['images_seen']:,} images, "
        f"{100 * m['images_seen'] / paper_images:.2g} % of the paper's 200,000 steps of 32), "
        f"**{m['train_minutes']:.1f} minutes** of training (the checkpoint's `train_seconds`, "
        "evaluations excluded).\n\n"
        f"This page was computed by `{results['command']}` in {env['seconds'] / 60:.1f} minutes "
        f"of wall-clock time, {env['cpu_seconds'] / 60:.1f} minutes of CPU time ({threads}, "
        f"torch {env['torch']}); held-out scenes from the "
        f"Tetrominoes generator with seed {results['data']['generated']['seed']} "
        f"({results['data']['generated']['num_images']} images), the "
        f"{results['data']['real']['num_images']} real records, torch seed "
        f"{results['inference_seed']} before every inference pass."
    )
    header = "| set | images | " + " | ".join(t for _, t in TABLE_METRICS) + " |"
    lines = [header, "|---|---:|" + "---:|" * len(TABLE_METRICS)]
    for name, stats in results["table"].items():
        count = stats["fg_ari"]["count"]
        cells = " | ".join(_cell(stats[k], k) for k, _ in TABLE_METRICS)
        lines.append(f"| {SET_TITLES[name]}, this model | {count} | {cells} |")
    for row in results["paper"]:
        cells = " | ".join(_cell(row.get(k), k) for k, _ in TABLE_METRICS)
        lines.append(f"| {row['source']} | | {cells} |")
    table = "\n".join(lines) + (
        f"\n\nMean ± standard deviation over images, at I = {m['test_refinement_steps']} and "
        f"K = {m['num_slots']} (the paper's ± is over training seeds instead). FG-ARI, ARI, mIoU "
        "and mSC are fractions (0.997 = 99.7 %); MSE on the [0, 1] pixel scale."
    )

    steps = results["sweep_steps"]
    lines = [
        f"First {steps['num_images']} held-out generated scenes, K = {steps['num_slots']}:",
        "",
        "| I | FG-ARI | MSE | KL (nats) | CPU s / image |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in steps["rows"]:
        mark = " (trained)" if r["num_steps"] in m["train_refinement_steps"] else ""
        kl = _cell(r["kl"], "kl") + (" (all layers)" if r["num_steps"] == 0 else "")
        lines.append(
            f"| {r['num_steps']}{mark} | {_cell(r['fg_ari'], 'fg_ari')} | "
            f"{_cell(r['mse'], 'mse')} | {kl} | {r['cpu_seconds_per_image']:.3f} |"
        )
    slots = results["sweep_slots"]
    lines += [
        "",
        f"The same scenes, I = {slots['num_steps']}:",
        "",
        "| K | FG-ARI | MSE | KL (nats) | slots used |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in slots["rows"]:
        mark = " (trained)" if r["num_slots"] == m["num_slots"] else ""
        lines.append(
            f"| {r['num_slots']}{mark} | {_cell(r['fg_ari'], 'fg_ari')} | "
            f"{_cell(r['mse'], 'mse')} | {_cell(r['kl'], 'kl')} | "
            f"{r['slots_used']['mean']:.2f} |"
        )
    sweeps = "\n".join(lines)

    return {"model": model, "table": table, "sweeps": sweeps, "curve": _curve_table(results)}


def _curve_table(results: dict) -> str:
    """The training log's held-out evaluations as a Markdown table."""
    if not results["curve"]:
        return "(no training log beside the checkpoint)"
    sets = [s for s in SET_TITLES if s in results["curve"][-1]]
    lines = [
        "| step | training minutes | "
        + " | ".join(f"FG-ARI, {s}" for s in sets)
        + f" | MSE, {sets[0]} | KL, {sets[0]} (nats) |",
        "|---:|---:|" + "---:|" * (len(sets) + 2),
    ]
    curve = results["curve"]
    # every 1,000 steps and the last evaluation (the JSON and the figure hold them all)
    shown = [c for c in curve[:-1] if c["step"] % 1000 == 0] + curve[-1:]
    for c in shown:
        cells = []
        for s in sets:
            cell = f"{c[s]['fg_ari']:.3f}"
            if "fg_ari_std" in c[s]:
                cell += f" ± {c[s]['fg_ari_std']:.3f}"
            cells.append(cell)
        first = c[sets[0]]
        lines.append(
            f"| {c['step']:,} | {c['train_minutes']:.1f} | {' | '.join(cells)} | "
            f"{first['mse']:.2e} | {first['kl']:.1f} |"
        )
    return "\n".join(lines)


def fill_page(text: str, sections: dict[str, str]) -> str:
    """``text`` with each ``<!-- results:NAME:begin -->`` ... ``end`` region replaced."""
    import re

    for name, body in sections.items():
        begin, end = f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise ValueError(f"the page has no {begin} ... {end} region")
        filled = f"{begin}\n{body}\n{end}"
        text = pattern.sub(lambda _, filled=filled: filled, text, count=1)
    return text


def page_regions(text: str) -> dict[str, str]:
    """The current content of every marked region of a page."""
    import re

    pattern = re.compile(r"<!-- results:(\w+):begin -->\n(.*?)\n<!-- results:\1:end -->", re.S)
    return {name: body for name, body in pattern.findall(text)}


def results(
    out: Path = OUT,
    *,
    images: int = 320,
    sweep_images: int = 96,
    page: Path | None = PAGE,
    model: str = "tetrominoes",
    command: str = "python docs/scripts/make_figures.py results",
) -> list[Path]:
    """Score and draw the shipped (or any) model; write the JSON, the figures and the page."""
    import json
    import time

    import torch

    from pyro_emorl.io import load_for_inference
    from pyro_emorl.pretrained import PRETRAINED, pretrained_path

    begin, begin_cpu = time.perf_counter(), time.process_time()
    path = pretrained_path(model) if model in PRETRAINED else Path(model).resolve()
    loaded = load_for_inference(path)
    summary = _model_summary(model, path, loaded)
    test_i, k = summary["test_refinement_steps"], summary["num_slots"]
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = _heldout_sets(Path(tmp), images)
        table = {
            name: _score(loaded, dataset, len(dataset), test_i) for name, dataset in sets.items()
        }
        for row in table.values():
            del row["cpu_seconds_per_image"], row["slots_used"]
        n = min(sweep_images, len(sets["generated"]))
        sweep_steps = [
            {"num_steps": i, **_score(loaded, sets["generated"], n, i)} for i in SWEEP_STEPS
        ]
        sweep_slots = [
            {"num_slots": s, **_score(loaded, sets["generated"], n, test_i, s)} for s in SWEEP_SLOTS
        ]
        written += _draw_model(loaded, sets, out)
        real_count = len(sets["real"])
    # A shipped model's log lies beside it; a checkpoint of `fit` is in <run>/checkpoints/.
    logs = [path.with_name(path.stem + ".metrics.jsonl"), path.parent.parent / "metrics.jsonl"]
    log = next((candidate for candidate in logs if candidate.is_file()), logs[0])
    data = {
        "command": command,
        "model": summary,
        "data": {
            "generated": {"generator": "tetrominoes", "seed": HELDOUT_SEED, "num_images": images},
            "real": {"file": str(REAL_RECORDS.relative_to(ROOT)), "num_images": real_count},
        },
        "inference_seed": INFERENCE_SEED,
        "table": table,
        "paper": PAPER,
        "sweep_steps": {"num_images": n, "num_slots": k, "rows": sweep_steps},
        "sweep_slots": {"num_images": n, "num_steps": test_i, "rows": sweep_slots},
        "curve": _curve(log) if log.is_file() else [],
    }
    written.append(_draw_sweeps(data, out / "results_sweeps.png"))
    if data["curve"]:
        written.append(_draw_curve(data, out / "results_learning_curve.png"))
    data["environment"] = {
        "seconds": round(time.perf_counter() - begin, 1),
        "cpu_seconds": round(time.process_time() - begin_cpu, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__.split("+")[0],
    }
    json_path = out / f"results_{model if model in PRETRAINED else path.stem}.json"
    json_path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    written.append(json_path)
    if page is not None:
        page.write_text(fill_page(page.read_text(), render_sections(data)))
        written.append(page)
    return written


def scenes(out: Path = OUT, count: int = 5) -> Path:
    """The shipped Tetrominoes model on the first ``count`` held-out scenes: image,
    reconstruction and segmentation (the slot that owns each pixel), with a colour legend.
    The README's picture; seconds on a CPU."""
    import torch

    from pyro_emorl import decompose
    from pyro_emorl.io import load_for_inference

    loaded = load_for_inference("tetrominoes")
    with tempfile.TemporaryDirectory() as tmp:
        path = generate(
            "tetrominoes", Path(tmp) / "heldout.h5", 0, 320, seed=HELDOUT_SEED, progress=False
        )
        dataset = HDF5Dataset(path, "test")
        images = torch.stack([dataset[i]["imgs"] for i in range(count)])
    torch.manual_seed(INFERENCE_SEED)
    with torch.no_grad():
        result = decompose(
            loaded.model,
            loaded.guide,
            images,
            num_steps=loaded.config.refinement_steps,
            objective=loaded.refinement_objective(),
        ).final
    num_slots = result.masks.shape[1]
    colors = plt.get_cmap("tab20")
    fig = plt.figure(figsize=(1.45 * count + 1.0, 4.9), layout="constrained")
    axes = fig.subplots(3, count, squeeze=False)
    rows = ("scene", "reconstruction", "slot per pixel")
    for i in range(count):
        segmentation = result.masks[i, :, 0].argmax(dim=0).numpy()
        panels = (
            images[i].permute(1, 2, 0).numpy(),
            result.reconstruction[i].clamp(0, 1).permute(1, 2, 0).numpy(),
            colors(segmentation)[..., :3],
        )
        for row, panel in enumerate(panels):
            ax = axes[row, i]
            ax.imshow(panel, interpolation="nearest")
            _frame(ax)
            if i == 0:
                ax.set_ylabel(rows[row], fontsize=10)
    from matplotlib.patches import Patch

    fig.legend(
        handles=[Patch(color=colors(k), label=f"slot {k}") for k in range(num_slots)],
        loc="outside lower center",
        ncol=num_slots,
        fontsize=10,
        frameon=False,
    )
    fig.suptitle(
        "the shipped model on held-out scenes (FG-ARI 0.97; the black background is shared "
        "among the slots)",
        fontsize=9,
    )
    path = out / "scenes_tetrominoes.png"
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


FIGURES["scenes"] = scenes


def results_figures(out: Path = OUT) -> list[Path]:
    """Redraw the Results page's figures from ``results_tetrominoes.json`` and the shipped
    model, without scoring anything again (seconds: four decompositions, no sweeps)."""
    import json

    from pyro_emorl.io import load_for_inference

    data = json.loads((OUT / "results_tetrominoes.json").read_text())
    loaded = load_for_inference("tetrominoes")
    with tempfile.TemporaryDirectory() as tmp:
        sets = _heldout_sets(Path(tmp), data["data"]["generated"]["num_images"])
        written = _draw_model(loaded, sets, out)
    written.append(_draw_sweeps(data, out / "results_sweeps.png"))
    if data["curve"]:
        written.append(_draw_curve(data, out / "results_learning_curve.png"))
    return written


def main(argv: list[str] | None = None) -> int:
    """Draw the figures named in ``argv`` (the quick ones by default); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        choices=[[], *FIGURES, "results", "results-figures"],
        help="default: the quick figures",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="directory (default docs/figures)")
    results_options = parser.add_argument_group("results")
    results_options.add_argument(
        "--images", type=int, default=320, help="held-out generated scenes (default 320)"
    )
    results_options.add_argument(
        "--sweep-images", type=int, default=96, help="scenes of the I and K sweeps (default 96)"
    )
    results_options.add_argument(
        "--page", type=Path, default=PAGE, help="page to fill in (default docs/results.md)"
    )
    results_options.add_argument("--no-page", action="store_true", help="leave the page alone")
    results_options.add_argument(
        "--model", default="tetrominoes", help="a shipped model's name or a checkpoint file"
    )
    results_options.add_argument("--threads", type=int, help="torch threads (default torch's)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or FIGURES:
        if name == "results":
            if args.threads is not None:
                import torch

                torch.set_num_threads(args.threads)
            paths = results(
                args.out,
                images=args.images,
                sweep_images=args.sweep_images,
                page=None if args.no_page else args.page,
                model=args.model,
                command=_command(argv),
            )
        elif name == "results-figures":
            paths = results_figures(args.out)
        else:
            paths = [FIGURES[name](args.out)]
        for path in paths:
            print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


def _command(argv: list[str] | None) -> str:
    """The command line as the page should show it (the default one when run with defaults)."""
    words = sys.argv[1:] if argv is None else argv
    return " ".join(["python docs/scripts/make_figures.py", *words])


if __name__ == "__main__":
    sys.exit(main())
