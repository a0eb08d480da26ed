"""Feature schemas of DeepMind's Multi-Object Datasets TFRecords.

They restate the official readers of github.com/deepmind/multi_object_datasets.

Every image and mask byte is stored as its own one-byte string; factors are float32 lists except
CLEVR's categorical ``size``, ``material``, ``shape`` and ``color``, which are one-byte strings
too. Multi-dSprites stores masks as [H, W, N, 1]; all other datasets as [N, H, W, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

DATASETS = ("tetrominoes", "multi_dsprites", "clevr_with_masks", "objects_room")
"""The Multi-Object Datasets whose TFRecord files can be converted."""

# Entities (background + objects) per variant, from the official readers.
MULTI_DSPRITES_VARIANTS = {"colored_on_grayscale": 6, "colored_on_colored": 5, "binarized": 4}
OBJECTS_ROOM_VARIANTS = {"train": 7, "six_objects": 10, "empty_room": 4, "identical_color": 10}


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of a record.

    Attributes:
        name: Feature name in the record (and in the HDF5 ``factors`` group).
        kind: ``"bytes"`` for one-byte strings decoded to uint8, ``"float"`` for float32.
        shape: Shape of the decoded array for one record.
    """

    name: str
    kind: Literal["bytes", "float"]
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Number of values the feature holds."""
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class Schema:
    """The record layout of one dataset variant.

    Attributes:
        dataset: Dataset name, one of `DATASETS`.
        variant: Variant name, or ``None`` for datasets with a single variant.
        height: Image height H.
        width: Image width W.
        channels: Stored image channels C (1 for binarized Multi-dSprites, else 3).
        num_entities: Masks per image E, background included.
        masks_entity_last: Whether masks are stored [H, W, E, 1] instead of [E, H, W, 1].
        factors: Per-entity generative factors, each with leading dimension E.
    """

    dataset: str
    variant: str | None
    height: int
    width: int
    channels: int
    num_entities: int
    masks_entity_last: bool
    factors: tuple[FeatureSpec, ...]

    @property
    def image(self) -> FeatureSpec:
        """The ``image`` feature, [H, W, C] uint8."""
        return FeatureSpec("image", "bytes", (self.height, self.width, self.channels))

    @property
    def mask(self) -> FeatureSpec:
        """The ``mask`` feature in its stored axis order."""
        e, h, w = self.num_entities, self.height, self.width
        shape = (h, w, e, 1) if self.masks_entity_last else (e, h, w, 1)
        return FeatureSpec("mask", "bytes", shape)

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """All features of a record: image, mask, then the factors."""
        return (self.image, self.mask, *self.factors)

    @property
    def has_visibility(self) -> bool:
        """Whether the records carry a per-entity ``visibility`` factor."""
        return any(f.name == "visibility" for f in self.factors)


def _per_entity(e: int, names: str, kind: Literal["bytes", "float"] = "float") -> list[FeatureSpec]:
    return [FeatureSpec(name, kind, (e,)) for name in names.split()]


def get_schema(dataset: str, variant: str | None = None) -> Schema:
    """The schema of a dataset variant.

    Args:
        dataset: One of ``tetrominoes``, ``multi_dsprites``, ``clevr_with_masks``,
            ``objects_room``.
        variant: For ``multi_dsprites`` one of ``colored_on_grayscale`` (default; the paper's),
            ``colored_on_colored``, ``binarized``; for ``objects_room`` one of ``train``
            (default), ``six_objects``, ``empty_room``, ``identical_color``; otherwise ``None``.

    Returns:
        The `Schema`.

    Raises:
        ValueError: For an unknown dataset or variant.
    """
    if dataset == "tetrominoes":
        _no_variant(dataset, variant)
        e = 4
        factors = [*_per_entity(e, "x y shape"), FeatureSpec("color", "float", (e, 3))]
        factors += _per_entity(e, "visibility")
        return Schema(dataset, None, 35, 35, 3, e, False, tuple(factors))
    if dataset == "multi_dsprites":
        variant = _pick_variant(dataset, variant, MULTI_DSPRITES_VARIANTS, "colored_on_grayscale")
        e = MULTI_DSPRITES_VARIANTS[variant]
        c = 1 if variant == "binarized" else 3
        factors = [*_per_entity(e, "x y shape"), FeatureSpec("color", "float", (e, c))]
        factors += _per_entity(e, "visibility orientation scale")
        return Schema(dataset, variant, 64, 64, c, e, True, tuple(factors))
    if dataset == "clevr_with_masks":
        _no_variant(dataset, variant)
        e = 11
        factors = [*_per_entity(e, "x y z"), FeatureSpec("pixel_coords", "float", (e, 3))]
        factors += _per_entity(e, "rotation")
        factors += _per_entity(e, "size material shape color", kind="bytes")
        factors += _per_entity(e, "visibility")
        return Schema(dataset, None, 240, 320, 3, e, False, tuple(factors))
    if dataset == "objects_room":
        variant = _pick_variant(dataset, variant, OBJECTS_ROOM_VARIANTS, "train")
        return Schema(dataset, variant, 64, 64, 3, OBJECTS_ROOM_VARIANTS[variant], False, ())
    raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def _no_variant(dataset: str, variant: str | None) -> None:
    if variant is not None:
        raise ValueError(f"{dataset} has no variants; do not pass a variant (got {variant!r})")


def _pick_variant(dataset: str, variant: str | None, known: dict[str, int], default: str) -> str:
    if variant is None:
        return default
    if variant not in known:
        raise ValueError(f"unknown {dataset} variant {variant!r}; choose one of {', '.join(known)}")
    return variant
