"""Load a trained model for inference from a pyro_emorl or an official EfficientMORL checkpoint.

Our checkpoints name the registered components they were built from; loading rebuilds them by
name and refuses, in one line, a name that is not registered (register it first:
``--import MODULE_OR_FILE.py`` on the command line, an import in Python).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from pyro_emorl.config import ModelConfig
from pyro_emorl.devices import check_device
from pyro_emorl.infer.elbo import Objective
from pyro_emorl.infer.geco import GECO
from pyro_emorl.infer.objective import build_objective
from pyro_emorl.io import official
from pyro_emorl.io.checkpoint import Checkpoint, migrate, read_torch_file
from pyro_emorl.io.pretrained import PRETRAINED, pretrained_path
from pyro_emorl.protocols import Guide, ModuleLike, SceneModel
from pyro_emorl.registry import REGISTRY, build, config_from_dict


@dataclass
class LoadedModel:
    """A model ready for inference.

    Attributes:
        config: its configuration.
        model: the generative model (eval mode).
        guide: the guide (eval mode).
        geco: GECO with the checkpoint's multiplier, if the configuration uses GECO.
        source: ``"pyro_emorl"`` or ``"official"``.
    """

    config: ModelConfig
    model: SceneModel
    guide: Guide
    geco: GECO | None
    source: str

    def refinement_objective(self, name: str = "auto") -> Objective | None:
        """The objective whose gradient drives test-time refinement.

        ``"elbo"``: the ELBO (the ICML-era official evaluation). ``"geco"``: GECO's Lagrangian
        with the checkpoint's multiplier (the official evaluation at HEAD, for configurations
        trained with GECO). ``"auto"``: ``"geco"`` when GECO is configured and past its warm
        start, else ``"elbo"``.
        """
        if name not in ("auto", "elbo", "geco"):
            raise ValueError(f"refinement objective must be auto, elbo or geco, got {name!r}")
        if name == "elbo":
            return None
        if self.geco is None:
            if name == "geco":
                raise ValueError("this model has no GECO settings; use the ELBO objective")
            return None
        if name == "auto" and not bool(self.geco.active):
            return None
        return self.geco.objective


def _check_weights_fit(
    path: Path, name: str, program: ModuleLike, weights: dict, custom: bool
) -> None:
    """Raise a `ValueError` naming the parameters that differ between a program and weights."""
    expected, found = set(program.state_dict()), set(weights)
    if expected == found:
        return
    differences = []
    for label, names in (("unexpected", found - expected), ("missing", expected - found)):
        if names:
            shown = ", ".join(sorted(names)[:4]) + (", ..." if len(names) > 4 else "")
            differences.append(f"{len(names)} {label} ({shown})")
    if custom:
        hint = f"build the {name} the checkpoint was trained with"
    else:
        hint = (
            "it was trained with programs of its own (a custom prior, likelihood, decoder or "
            "guide): build them again as for training and pass load_for_inference(path, "
            "model=..., guide=...)"
        )
    raise ValueError(
        f"{path}: the {name}'s weights do not fit the {name} to load them into: "
        f"{'; '.join(differences)}; {hint}"
    )


def check_components(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> None:
    """Refuse, in one line, a checkpoint whose components are not all registered, or one
    trained with programs that no name describes.

    Raises:
        ValueError: naming the first missing component and how to register it.
    """
    if checkpoint.get("programs") == "custom":
        raise ValueError(
            f"{path} was trained with programs passed to fit(model=, guide=), which no "
            "registered name describes: build them again as for training and pass "
            "load_for_inference(path, model=..., guide=...), or register your components and "
            "name them in the configuration"
        )
    for kind, record in checkpoint.get("components", {}).items():
        if record["name"] not in REGISTRY.names(kind):
            raise ValueError(
                f"{path} was trained with the {kind} {record['name']!r} ({record['source']}), "
                "which is not registered: pass --import MODULE_OR_FILE.py that registers it (in "
                "Python, import it before loading)"
            )


def initial_weights(source: str | os.PathLike[str]) -> dict[str, dict[str, torch.Tensor]]:
    """The model's and the guide's weights of a checkpoint (or a shipped model by name), to
    start a new run from: ``{"model": state_dict, "guide": state_dict}``.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for a file that is not one of our checkpoints, or weights that are not finite.
    """
    path = Path(source)
    if not path.is_file() and str(source) in PRETRAINED:
        path = pretrained_path(str(source))
    if not path.is_file():
        raise FileNotFoundError(
            f"init_from: no checkpoint {path} (the shipped models are {', '.join(PRETRAINED)})"
        )
    state = read_torch_file(path)
    if not isinstance(state, dict) or "model" not in state or "guide" not in state:
        raise ValueError(f"init_from: {path} is not a pyro_emorl checkpoint")
    state = migrate(state, path)
    for name in ("model", "guide"):
        check_finite_weights(path, name, state[name])
    return {"model": state["model"], "guide": state["guide"]}


def check_finite_weights(path: str | os.PathLike[str], name: str, weights: Mapping) -> None:
    """Refuse weights holding NaN or infinity, naming the first tensor (a diverged run's)."""
    for key, value in weights.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if not bool(torch.isfinite(value).all()):
                raise ValueError(
                    f"{path}: the {name}'s weight {key} holds NaN or infinite values (the run "
                    "diverged before this checkpoint): use an earlier checkpoint"
                )


def _is_official(state: dict) -> bool:
    weights = state.get("model", state)
    if not isinstance(weights, dict):
        return False
    names = [key.removeprefix("module.") for key in weights]
    return "init_slots" in names or any(  # init_slots: the official Slot Attention baseline
        name.split(".", 1)[0] in ("hvae_networks", "object_discovery_block", "refinenet")
        for name in names
    )


def load_for_inference(
    path: str | os.PathLike[str],
    *,
    config: ModelConfig | None = None,
    model: SceneModel | None = None,
    guide: Guide | None = None,
    map_location: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a checkpoint written by ``emorl train`` or an official EfficientMORL checkpoint.

    A checkpoint stores weights, the configuration and the registered names of its components,
    not code. The components are rebuilt by name: register your own before loading (import the
    module that registers them). A model trained with programs passed to
    [fit][pyro_emorl.train.fit] as ``model=`` and ``guide=`` (which no name describes) is loaded
    into programs you build again the same way::

        model, guide = build_my_programs()          # the same code as for training
        loaded = load_for_inference("runs/mine/checkpoints/step-00001000.pt",
                                    model=model, guide=guide)

    Args:
        path: the checkpoint file, or the name of a shipped model
            (see [PRETRAINED][pyro_emorl.pretrained.PRETRAINED], e.g. ``"tetrominoes"``).
        config: required for official checkpoints (they do not store their configuration),
            e.g. ``presets.tetrominoes()``; ignored for ours, which carry theirs.
        model: for our checkpoints, the model to load the weights into (default: built from the
            checkpoint's configuration). Give both ``model`` and ``guide`` or neither.
        guide: the guide to load the weights into.
        map_location: device for the tensors.

    Returns:
        A `LoadedModel` in eval mode.

    Raises:
        FileNotFoundError: missing file.
        ValueError: an official checkpoint without ``config``, a file that is neither kind, a
            checkpoint of a newer format, a component that is not registered, or weights that
            do not fit the programs (the message names the differing parameters).
    """
    check_device(map_location, "map_location")
    if (model is None) != (guide is None):
        raise ValueError(
            "give both model= and guide= (the programs the checkpoint trained) or neither"
        )
    path = Path(path)
    if not path.is_file() and str(path) in PRETRAINED:
        path = pretrained_path(str(path))
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path} (the shipped models are {', '.join(PRETRAINED)})"
        )
    state = read_torch_file(path, map_location)
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a checkpoint (found {type(state).__name__})")
    if "guide" in state and "config" in state:
        state = migrate(state, path)
        custom = model is not None
        if not custom:
            check_components(state, path)
        config = config_from_dict(state["config"])
        if not custom:
            model, guide = build(config)
        assert model is not None and guide is not None
        for name, program in (("model", model), ("guide", guide)):
            _check_weights_fit(path, name, program, state[name], custom)
            check_finite_weights(path, name, state[name])
            program.load_state_dict(state[name])
        _, geco = build_objective(config.objective_settings())
        if geco is not None and state.get("geco") is not None:
            geco.load_state_dict(state["geco"])
        source = "pyro_emorl"
    elif _is_official(state):
        if model is not None:
            raise ValueError(
                f"{path} is an official EfficientMORL checkpoint: it loads into the library's "
                "own programs (pass config=, not model= and guide=)"
            )
        if config is None:
            raise ValueError(
                f"{path} is an official EfficientMORL checkpoint, which does not store its "
                "configuration: pass the matching preset (e.g. --preset tetrominoes)"
            )
        model, guide, geco_state = official.load_official(state, config, map_location)
        _, geco = build_objective(config.objective_settings())
        if geco is not None and geco_state:
            geco.C_ema.copy_(geco_state["C_ema"])
            geco.beta.copy_(geco_state["beta"])
            geco.num_updates.fill_(geco.warm_start + 1)  # a released model is past warm start
        source = "official"
    else:
        raise ValueError(f"{path} is neither a pyro_emorl nor an official EfficientMORL checkpoint")
    device = torch.device(map_location)
    model.to(device).eval()
    guide.to(device).eval()
    if geco is not None:
        geco.to(device)
    return LoadedModel(config, model, guide, geco, source)
