"""The table of trained models that ship with the library, and where their files are."""

from __future__ import annotations

from pathlib import Path

#: The package-data folder holding the shipped checkpoints and their training logs.
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"

PRETRAINED = {
    "tetrominoes": "Tetrominoes (35x35, K = 4), trained with the tetrominoes_fast recipe",
}
"""The shipped models by name: what each was trained on and with which recipe."""


def pretrained_path(name: str) -> Path:
    """The checkpoint file of the shipped model ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        FileNotFoundError: if the package was installed without its model files.
    """
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model named {name!r}; choose one of {sorted(PRETRAINED)}")
    path = PRETRAINED_DIR / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"the pretrained model file {path} is missing: reinstall pyro_emorl with its "
            "package data (pip install -e . from a clone keeps it)"
        )
    return path
