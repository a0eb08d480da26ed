"""Draw the figures of the documentation into ``docs/figures/``.

Run from the repository root::

    python docs/scripts/make_figures.py            # all figures
    python docs/scripts/make_figures.py overview   # only some
    python docs/scripts/make_figures.py --out /tmp/figures   # somewhere else

Everything is computed here, from the library: the data panels come from the Multi-dSprites and
Tetrominoes generators (seed 0), the schedules from ``pyro_emorl.infer``, the GECO numbers from
``pyro_emorl.infer.GECO`` and ``pyro_emorl.presets``. No trained model is needed; the whole
script takes a few seconds on a CPU. The PNGs are small (tens of KB) and committed.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from pyro_emorl import presets  # noqa: E402
from pyro_emorl.data import HDF5Dataset, generate  # noqa: E402
from pyro_emorl.infer import HALF_LOG_2PI, official_lr_factor, step_weights  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    """Draw the figures named in ``argv`` (all by default); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[[], *FIGURES], help="default: all")
    parser.add_argument("--out", type=Path, default=OUT, help="directory (default docs/figures)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or FIGURES:
        path = FIGURES[name](args.out)
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
