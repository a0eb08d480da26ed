"""Import of official EfficientMORL weights (``pemami4911/EfficientMORL``).

The official ``EfficientMORL`` module keeps everything under ``hvae_networks.*`` and
``refinenet.*``; released checkpoints wrap it in ``DistributedDataParallel`` (``module.`` prefix)
and older ones use the names ``object_discovery_block``, top-level ``pos_embed_projection`` /
``encoder_pt_*`` and carry ``generation_relation`` and DualGRU ``zeros`` tensors, which the official
``eval.py`` renames or drops; so does `normalize_official_keys`.

The official ``SlotAttention`` baseline keeps its parameters at the top level
(``encoder_pt_1.*``, ``to_q.weight``, ``gru.weight_ih_l0``, ``init_slots``,
``image_decoder.*``, ...); a Slot Attention configuration (the ``slot_attention_*`` presets)
converts those (`convert_slot_attention_state_dict`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from typing import Any

import torch
from torch import Tensor

from pyro_emorl.config import ModelConfig
from pyro_emorl.models.emorl.config import EMORLConfig
from pyro_emorl.models.slot_attention.config import SlotAttentionConfig
from pyro_emorl.protocols import Guide, SceneModel
from pyro_emorl.registry import build

_HVAE = "hvae_networks."

# Official name (after ``hvae_networks.`` / ``refinenet.``) -> ours (after ``guide.`` / ``model.``).
_PREFIXES: tuple[tuple[str, str], ...] = (
    (_HVAE + "pos_embed_projection.", "guide.encoder.position_projection."),
    (_HVAE + "encoder_pt_1.", "guide.encoder.convs."),
    (_HVAE + "encoder_pt_2.", "guide.encoder.mlp."),
    (_HVAE + "norm_slots.", "guide.layer.attention.norm_slots."),
    (_HVAE + "to_q.", "guide.layer.attention.to_q."),
    (_HVAE + "to_k.", "guide.layer.attention.to_k."),
    (_HVAE + "to_v.", "guide.layer.attention.to_v."),
    (_HVAE + "gru.cell.", "guide.layer.recurrence."),
    (_HVAE + "project_update.", "guide.layer.recurrence.project_update."),
    (_HVAE + "norm_mu_pre_ff.", "guide.layer.norm_loc."),
    (_HVAE + "mlp_mu.", "guide.layer.mlp_loc."),
    (_HVAE + "norm_softplus_pre_ff.", "guide.layer.norm_raw_scale."),
    (_HVAE + "mlp_softplus.", "guide.layer.mlp_raw_scale."),
    (_HVAE + "image_decoder.decode.", "model.decoder.convs."),
    (_HVAE + "image_decoder.pos_embed_projection.", "model.decoder.position_projection."),
    (_HVAE + "indep_prior.z_linear.0.", "model.prior.conditional.hidden."),
    (_HVAE + "indep_prior.z_mu.", "model.prior.conditional.loc."),
    (_HVAE + "indep_prior.z_softplus.", "model.prior.conditional.raw_scale."),
    ("refinenet.encoding.", "guide.refiner.encoding."),
    ("refinenet.loc.", "guide.refiner.loc."),
    ("refinenet.softplus.", "guide.refiner.raw_scale."),
)
# ``nn.GRU`` (official) -> ``nn.GRUCell`` (ours): only the ``_l0`` suffix differs.
_GRUS = (
    (_HVAE + "gru.", "guide.layer.recurrence.cell."),
    ("refinenet.recurrence.", "guide.refiner.recurrence."),
)
_GECO_KEYS = {"geco_C_ema": "C_ema", "geco_beta": "beta"}

# The official SlotAttention baseline: official name -> ours (after ``guide.`` / ``model.``).
_SLOT_ATTENTION_PREFIXES: tuple[tuple[str, str], ...] = (
    ("pos_embed_projection.", "guide.encoder.position_projection."),
    ("encoder_pt_1.", "guide.encoder.convs."),
    ("encoder_pt_2.", "guide.encoder.mlp."),
    ("norm_slots.", "guide.slot_attention.attention.norm_slots."),
    ("to_q.", "guide.slot_attention.attention.to_q."),
    ("to_k.", "guide.slot_attention.attention.to_k."),
    ("to_v.", "guide.slot_attention.attention.to_v."),
    ("norm_pre_ff.", "guide.slot_attention.norm_pre_ff."),
    ("mlp.", "guide.slot_attention.mlp."),
    ("image_decoder.decode.", "model.decoder.convs."),
    ("image_decoder.pos_embed_projection.", "model.decoder.position_projection."),
)
_SLOT_ATTENTION_GRU = ("gru.", "guide.slot_attention.gru.")


def normalize_official_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip ``module.``, rename pre-release key names, drop unused tensors (as ``eval.py``)."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("module."):
            key = key[len("module.") :]
        if "generation_relation" in key or "gru.cell.zeros" in key:
            continue
        if key.startswith("object_discovery_block."):
            key = _HVAE + key[len("object_discovery_block.") :]
        elif key.startswith(("pos_embed_projection.", "encoder_pt_")):
            key = _HVAE + key
        out[key] = value
    return out


def _rename(key: str) -> str | None:
    if key == _HVAE + "init_posterior":
        return "initial"
    for official, ours in _GRUS:
        if key.startswith(official) and key.endswith("_l0"):
            return ours + key[len(official) : -len("_l0")]
    for official, ours in _PREFIXES:
        if key.startswith(official):
            return ours + key[len(official) :]
    return None


def convert_state_dict(
    state_dict: Mapping[str, Tensor], config: ModelConfig
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
    """Convert an official ``state_dict`` to ours.

    Args:
        state_dict: official model weights (with or without ``module.``; old names accepted).
        config: our configuration of the same model (``EMORLConfig.from_official(net)``).

    Returns:
        ``(model_state, guide_state, geco_state)``: complete state dicts for the
        model and guide of ``build(config)``, and ``{"C_ema", "beta"}`` (empty if the
        checkpoint has none). A Slot Attention configuration converts an official
        ``SlotAttention`` state_dict instead (`convert_slot_attention_state_dict`).

    Raises:
        ValueError: keys or shapes that do not belong to ``config`` (named in the message).
    """
    if isinstance(config, SlotAttentionConfig):
        return (*convert_slot_attention_state_dict(state_dict, config), {})
    if not isinstance(config, EMORLConfig):
        raise ValueError(
            f"official checkpoints hold EfficientMORL or Slot Attention, not {config.model!r}"
        )
    model, guide = build(config)
    expected = {f"model.{k}": v for k, v in model.state_dict().items()}
    expected.update({f"guide.{k}": v for k, v in guide.state_dict().items()})
    weights = normalize_official_keys(state_dict)
    geco = {
        _GECO_KEYS[k]: weights.pop(k).detach().clone() for k in list(weights) if k in _GECO_KEYS
    }
    converted, unknown = _map_weights(weights, _rename, expected)
    problems = []
    if unknown:
        problems.append(f"keys this configuration does not have: {sorted(unknown)[:8]}")
        if "init_slots" in unknown:
            problems.append(
                "this looks like an official SlotAttention state_dict: pass a Slot Attention "
                "configuration (e.g. presets.slot_attention_tetrominoes())"
            )
    context = (
        f"K={config.num_slots}, D={config.z_dim}, decoder={config.decoder!r}, "
        f"dual_gru={config.dual_gru}); check z_size, image_decoder and use_DualGRU"
    )
    model_state, guide_state = _complete(converted, model, guide, problems, context)
    return model_state, guide_state, geco


def _map_weights(
    weights: Mapping[str, Tensor],
    rename: Callable[[str], str | None],
    expected: Collection[str],
) -> tuple[dict[str, Tensor], list[str]]:
    """Official weights under our names, and the official keys that have none in ``expected``.

    ``rename`` gives our ``"model.*"``/``"guide.*"`` name of an official key, ``None`` for none,
    or ``"initial"`` for the learned slot initialisation ``[1, 1, 2D]``, which becomes the
    guide's ``initial_loc`` and ``initial_raw_scale`` (``[D]`` each).
    """
    converted: dict[str, Tensor] = {}
    unknown = []
    for key, value in weights.items():
        ours = rename(key)
        if ours == "initial":
            d = value.shape[-1] // 2
            converted["guide.initial_loc"] = value.reshape(-1)[:d]
            converted["guide.initial_raw_scale"] = value.reshape(-1)[d:]
        elif ours is None or ours not in expected:
            unknown.append(key)
        else:
            converted[ours] = value
    return converted, unknown


def _complete(
    converted: dict[str, Tensor],
    model: torch.nn.Module,
    guide: torch.nn.Module,
    problems: list[str],
    context: str,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Check shapes and completeness of converted weights; split them into model and guide."""
    expected = {f"model.{k}": v for k, v in model.state_dict().items()}
    expected.update({f"guide.{k}": v for k, v in guide.state_dict().items()})
    for key, value in converted.items():
        if key in expected and expected[key].shape != value.shape:
            problems.append(
                f"{key}: checkpoint shape {tuple(value.shape)} != {tuple(expected[key].shape)}"
            )
    # Buffers of ours the official module does not store (fixed prior, likelihood scale).
    missing = sorted(
        k for k in expected if k not in converted and k not in _own_buffers(model, guide)
    )
    if missing:
        problems.append(f"parameters missing from the checkpoint: {missing[:8]}")
    if problems:
        raise ValueError(
            f"this official state_dict does not match the configuration ({context}: "
            + "; ".join(problems)
        )
    for key, value in expected.items():
        converted.setdefault(key, value)
    model_state = {k[len("model.") :]: v for k, v in converted.items() if k.startswith("model.")}
    guide_state = {k[len("guide.") :]: v for k, v in converted.items() if k.startswith("guide.")}
    return model_state, guide_state


def _rename_slot_attention(key: str) -> str | None:
    if key == "init_slots":
        return "initial"
    official, ours = _SLOT_ATTENTION_GRU
    if key.startswith(official) and key.endswith("_l0"):
        return ours + key[len(official) : -len("_l0")]
    for official, ours in _SLOT_ATTENTION_PREFIXES:
        if key.startswith(official):
            return ours + key[len(official) :]
    return None


def convert_slot_attention_state_dict(
    state_dict: Mapping[str, Tensor], config: SlotAttentionConfig
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Convert an official ``SlotAttention`` ``state_dict`` to ours.

    ``init_slots`` ``[1, 2D]`` becomes the guide's ``initial_loc`` and ``initial_raw_scale``;
    ``nn.GRU``'s ``*_l0`` weights become the ``nn.GRUCell``'s; everything else is renamed.

    Args:
        state_dict: official weights (with or without the ``module.`` prefix of
            ``DistributedDataParallel``).
        config: the matching configuration, ``model="slot_attention"`` (e.g.
            ``presets.slot_attention_tetrominoes()``).

    Returns:
        ``(model_state, guide_state)``: complete state dicts for ``build(config)``.

    Raises:
        ValueError: a configuration that is not Slot Attention, or keys or shapes that do not
            belong to ``config`` (named in the message).
    """
    if not isinstance(config, SlotAttentionConfig):
        raise ValueError(
            "convert_slot_attention_state_dict needs a Slot Attention configuration, got "
            f"{config.model!r}"
        )
    model, guide = build(config)
    expected = {f"model.{k}" for k in model.state_dict()}
    expected.update(f"guide.{k}" for k in guide.state_dict())
    weights = {key.removeprefix("module."): value for key, value in state_dict.items()}
    converted, unknown = _map_weights(weights, _rename_slot_attention, expected)
    problems = []
    if unknown:
        problems.append(f"keys this configuration does not have: {sorted(unknown)[:8]}")
        if any(
            k.startswith(("hvae_networks.", "refinenet.", "object_discovery_block."))
            for k in unknown
        ):
            problems.append(
                "this looks like an official EfficientMORL state_dict: pass an EfficientMORL "
                "configuration (e.g. presets.tetrominoes())"
            )
    context = (
        f"K={config.num_slots}, D={config.z_dim}, decoder={config.decoder!r}); "
        "check z_size and image_decoder"
    )
    return _complete(converted, model, guide, problems, context)


def _own_buffers(model: torch.nn.Module, guide: torch.nn.Module) -> set[str]:
    names = {f"model.{k}" for k, _ in model.named_buffers()}
    return names | {f"guide.{k}" for k, _ in guide.named_buffers()}


def load_official(
    source: str | os.PathLike | Mapping[str, Any],
    config: ModelConfig,
    map_location: str | torch.device = "cpu",
) -> tuple[SceneModel, Guide, dict[str, Tensor]]:
    """Build a model and guide from an official checkpoint file or ``state_dict``.

    Args:
        source: path of an official ``*.pth`` checkpoint (a dict with ``"model"``), or a
            ``state_dict``.
        config: the matching configuration (e.g. ``presets.tetrominoes()``; for an official
            ``SlotAttention`` checkpoint a Slot Attention one such as
            ``presets.slot_attention_tetrominoes()``).
        map_location: where to load tensors.

    Returns:
        ``(model, guide, geco_state)``; ``geco_state`` holds ``C_ema`` and ``beta`` if present
        (load it into `GECO` with ``geco.C_ema.copy_(...)``).
    """
    if isinstance(source, Mapping):
        checkpoint: Mapping[str, Any] = source
    else:
        # Official checkpoints hold only tensors and plain Python numbers.
        checkpoint = torch.load(os.fspath(source), map_location=map_location, weights_only=True)
    state_dict = checkpoint["model"] if "model" in checkpoint else checkpoint
    model_state, guide_state, geco = convert_state_dict(state_dict, config)
    model, guide = build(config)
    model.load_state_dict(model_state)
    guide.load_state_dict(guide_state)
    return model.to(map_location), guide.to(map_location), geco
