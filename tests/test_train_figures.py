"""The decomposition figure drawn during training (pyro_emorl.viz.decomposition)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

import pyro_emorl as pe
from pyro_emorl.viz import plot_decomposition, save_figure
from tests.test_train_worker import tiny_config


@pytest.fixture(scope="module")
def decomposed() -> tuple[pe.Decomposition, torch.Tensor]:
    torch.manual_seed(0)
    model, guide = pe.build(tiny_config())
    images = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        return pe.decompose(model, guide, images, num_steps=2), images


def test_plot_has_two_rows_of_image_reconstruction_and_slots(decomposed) -> None:
    decomposition, images = decomposed
    figure = plot_decomposition(decomposition, images, index=1)
    assert isinstance(figure, Figure)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "image",
        "reconstruction",
        "slot 0",
        "slot 1",
        "slot 2",
        "segmentation",
        "|error|",
        "mask 0",
        "mask 1",
        "mask 2",
    ]
    assert figure.get_suptitle().startswith("refinement step 2: NLL")
    amortized = plot_decomposition(decomposition, images, step=0, title="init")
    assert amortized.get_suptitle() == "init"


def test_plot_checks_its_arguments(decomposed) -> None:
    decomposition, images = decomposed
    with pytest.raises(IndexError):
        plot_decomposition(decomposition, images, index=2)
    with pytest.raises(ValueError, match="do not match"):
        plot_decomposition(decomposition, images[:1])


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_save_figure_writes_atomically(decomposed, tmp_path, suffix: str) -> None:
    decomposition, images = decomposed
    path = save_figure(plot_decomposition(decomposition, images), tmp_path / "f" / f"d{suffix}")
    assert path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    magic = {".png": b"\x89PNG", ".pdf": b"%PDF"}[suffix]
    assert path.read_bytes().startswith(magic)
