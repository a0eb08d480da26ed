"""The configuration every model family extends, and the objective settings it derives."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pyro_emorl.config import fields
from pyro_emorl.config.training import GECOConfig, TrainingConfig

ConfigT = TypeVar("ConfigT", bound="ModelConfig")


@dataclass(frozen=True)
class ObjectiveSettings:
    """What the training objective of a model is made of (built by `pyro_emorl.infer`).

    Attributes:
        num_steps: refinement steps ``I`` at test time.
        weights: step weights (``"official"``, ``"paper"`` or ``w_0 .. w_I``).
        kl_beta: weight of the KL.
        geco: GECO settings, or ``None`` for the plain (refinement) ELBO.
        image_shape: ``(C, H, W)`` (GECO's target is per image element).
    """

    num_steps: int
    weights: str | tuple[float, ...]
    kl_beta: float
    geco: GECOConfig | None
    image_shape: tuple[int, int, int]


def check_image_shape(shape: Any) -> tuple[int, int, int]:
    """``shape`` as a ``(C, H, W)`` tuple of positive integers."""
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence) or len(shape) != 3:
        raise ValueError(f"image_shape must be (C, H, W), got {shape!r}")
    c, h, w = (fields.integer("image_shape (C, H, W)", s, 1) for s in shape)
    return c, h, w


def check_options(name: str, value: Any) -> dict[str, Any]:
    """A component's options: a mapping from option names to JSON-like values."""
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a mapping of option names to values, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class ModelConfig:
    """The fields every model family has; a family's configuration subclasses it.

    A subclass sets the class attribute ``model`` to the name its build is registered under
    (`pyro_emorl.register`), adds its own fields, and says how its objective is made
    (`objective_settings`). Nested settings (``training``, ``geco``) are named in ``nested``
    so that `from_dict` rebuilds them.

    Attributes:
        image_shape: ``(C, H, W)``.
        num_slots: ``K``.
        refinement_steps: refinement steps ``I`` at test time (0 for models without any).
        training: the optimisation recipe.
    """

    #: The registered name of the model family.
    model: ClassVar[str] = ""
    #: Fields holding nested settings, with their dataclass.
    nested: ClassVar[Mapping[str, type]] = {"training": TrainingConfig}

    image_shape: tuple[int, int, int] = (3, 64, 64)
    num_slots: int = 4
    refinement_steps: int = 0
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def __post_init__(self) -> None:
        _set = object.__setattr__
        _set(self, "image_shape", check_image_shape(self.image_shape))
        _set(self, "num_slots", fields.integer("num_slots", self.num_slots, 1))
        _set(
            self,
            "refinement_steps",
            fields.integer("refinement_steps", self.refinement_steps, 0),
        )
        if not isinstance(self.training, TrainingConfig):
            raise ValueError(f"training must be a TrainingConfig, got {self.training!r}")

    def objective_settings(self) -> ObjectiveSettings:
        """The objective's settings (the refinement ELBO, weighted as the family trains)."""
        raise NotImplementedError(f"{type(self).__name__} must define objective_settings()")

    def replace(self: ConfigT, **changes: Any) -> ConfigT:
        """A copy with some fields changed (nested settings accept dicts of changes)."""
        for name in self.nested:
            current = getattr(self, name)
            if isinstance(changes.get(name), Mapping) and current is not None:
                changes[name] = dataclasses.replace(current, **changes[name])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (for checkpoints and JSON), led by the model's name."""
        return {"model": self.model, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls: type[ConfigT], data: Mapping[str, Any]) -> ConfigT:
        """Inverse of `to_dict`; unknown fields are refused in one line that names them."""
        data = dict(data)
        model = data.pop("model", cls.model)
        if model != cls.model:
            raise ValueError(f"a {model!r} configuration is not a {cls.model!r} one")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown {cls.model} configuration field(s) {unknown} (written by another "
                f"version of pyro_emorl?); known fields: {sorted(known)}"
            )
        for name, kind in cls.nested.items():
            value = data.get(name)
            if isinstance(value, Mapping):
                data[name] = _nested_from_dict(f"{name}", kind, value)
        return cls(**data)


def _nested_from_dict(name: str, kind: type, data: Mapping[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {name} field(s) {unknown}; known: {sorted(known)}")
    return kind(**data)
