"""The Slot Attention baseline's presets: the official ``SlotAttention.json`` recipe on each
dataset (registered by name)."""

from __future__ import annotations

from typing import Any

from pyro_emorl.config import TrainingConfig
from pyro_emorl.models.slot_attention.config import SLOT_ATTENTION_LOG_SCALE, SlotAttentionConfig
from pyro_emorl.registry import register


def _slot_attention(
    image_shape: tuple[int, int, int], num_slots: int, z_dim: int, decoder: str
) -> SlotAttentionConfig:
    """The official ``SlotAttention.json`` recipe: 3 iterations, batch 64, 500K steps, Adam 4e-4
    with the 10K-step warm-up and halving every 100K steps, no gradient clipping, no GECO."""
    return SlotAttentionConfig(
        image_shape=image_shape,
        num_slots=num_slots,
        z_dim=z_dim,
        num_layers=3,
        refinement_steps=0,
        log_scale=SLOT_ATTENTION_LOG_SCALE,
        decoder=decoder,
        likelihood="gaussian",
        training=TrainingConfig(
            steps=500_000,
            batch_size=64,
            lr=4e-4,
            warmup_steps=10_000,
            lr_half_life=100_000,
            clip_grad_norm=None,
            curriculum=((-1, 0),),
        ),
    )


@register("preset", "slot_attention_tetrominoes", data="tetrominoes")
def slot_attention_tetrominoes(**overrides: Any) -> SlotAttentionConfig:
    """Slot Attention on Tetrominoes (official baseline): 35x35, K=4, D=32, small decoder.

    Trained on the summed squared error: a Gaussian likelihood with ``sigma = 1/sqrt(2)`` on the
    mask-weighted mean, so the loss is the official one plus a constant. 419,236 parameters.
    """
    config = _slot_attention((3, 35, 35), 4, 32, "small")
    return config.replace(**overrides) if overrides else config


@register("preset", "slot_attention_multi_dsprites", data="multi_dsprites")
def slot_attention_multi_dsprites(**overrides: Any) -> SlotAttentionConfig:
    """Slot Attention on Multi-dSprites (official baseline): 64x64, K=6, D=64, *small* decoder
    (as the official config; EfficientMORL uses the iodine one). 479,204 parameters."""
    config = _slot_attention((3, 64, 64), 6, 64, "small")
    return config.replace(**overrides) if overrides else config


@register("preset", "slot_attention_clevr6")
def slot_attention_clevr6(**overrides: Any) -> SlotAttentionConfig:
    """Slot Attention on CLEVR6 at 96x96 (official baseline): K=7, D=64, the deconvolutional
    ``big`` decoder. 890,180 parameters."""
    config = _slot_attention((3, 96, 96), 7, 64, "big")
    return config.replace(**overrides) if overrides else config
