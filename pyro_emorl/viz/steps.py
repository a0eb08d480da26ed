"""Every bottom-up layer and refinement step of one decomposition, with attention per layer
(the paper's figures 15-18)."""

from __future__ import annotations

from matplotlib.figure import Figure
from torch import Tensor

from pyro_emorl.decompose import DecodedSlots, Decomposition
from pyro_emorl.viz.decomposition import _hwc, _show


def plot_inference_steps(
    decomposition: Decomposition,
    images: Tensor,
    index: int = 0,
    *,
    panel_size: float = 1.2,
) -> Figure:
    """One row per bottom-up layer and per refinement step.

    Columns: image, reconstruction, segmentation, then every slot's component composited on white
    by its mask, then every slot's attention (bottom-up rows only; attention of layer ``l`` is
    the softmax over slots that produced ``z_l``).

    Args:
        decomposition: `pyro_emorl.decompose` output for ``images``.
        images: ``[B, C, H, W]`` in ``[0, 1]``.
        index: image of the batch.
        panel_size: inches per panel.

    Returns:
        The figure (built without ``pyplot``).
    """
    rows: list[tuple[str, DecodedSlots, Tensor | None]] = []
    for layer, decoded in enumerate(decomposition.layers, 1):
        # A guide without bottom-up attention (IODINE's) has layers but no attention maps.
        maps = decomposition.attention
        rows.append((f"layer {layer}", decoded, maps[layer - 1] if layer <= len(maps) else None))
    for step, decoded in enumerate(decomposition.steps[1:], 1):
        rows.append((f"refine {step}", decoded, None))
    num_slots = decomposition.steps[0].masks.shape[1]
    columns = 3 + 2 * num_slots
    figure = Figure(
        figsize=(panel_size * columns, panel_size * len(rows) + 0.3), layout="constrained"
    )
    axes = figure.subplots(len(rows), columns, squeeze=False)
    image = _hwc(images[index])
    for row, (name, decoded, attention) in enumerate(rows):
        masks = decoded.masks[index, :, 0].cpu()
        components = decoded.components[index].cpu()
        _show(axes[row, 0], image, "image" if row == 0 else "")
        axes[row, 0].set_ylabel(name, fontsize=8)
        _show(axes[row, 1], _hwc(decoded.reconstruction[index]), "recon." if row == 0 else "")
        segmentation = masks.argmax(dim=0).numpy()
        _show(
            axes[row, 2],
            segmentation,
            "segments" if row == 0 else "",
            cmap="tab20",
            vmin=0,
            vmax=19,
        )
        for k in range(num_slots):
            composite = components[k] * masks[k] + (1 - masks[k])
            _show(axes[row, 3 + k], _hwc(composite), f"slot {k}" if row == 0 else "")
            ax = axes[row, 3 + num_slots + k]
            if attention is None:
                ax.axis("off")
            else:
                _show(
                    ax,
                    attention[index, k, 0].cpu().numpy(),
                    f"attn {k}" if row == 0 else "",
                    cmap="viridis",
                    vmin=0,
                    vmax=1,
                )
    return figure
