"""A user's own prior and likelihood, registered in a file outside the package, through the whole
command line: train, resume exactly, evaluate and visualize with ``--import``; without it, one
line that names what is missing.

Each command runs in a fresh interpreter, as a user runs them, so nothing registered by one
command (or by this test process) leaks into the next.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pyro_emorl.data import generate
from pyro_emorl.io.checkpoint import load_checkpoint

USER_MODULE = textwrap.dedent(
    '''
    """A user's components: a prior with a learned scale and a Laplace likelihood."""
    import pyro
    import pyro.distributions as dist
    import torch
    from torch import nn

    import pyro_emorl as pe


    class LearnedScalePrior(nn.Module):
        """Every layer independently N(0, softplus(raw)^2), raw learned per dimension."""

        def __init__(self, z_dim, num_layers, init):
            super().__init__()
            self.num_layers = num_layers
            self.raw_scale = nn.Parameter(torch.full((z_dim,), float(init)))

        def normal(self):
            scale = torch.nn.functional.softplus(self.raw_scale)
            return dist.Normal(torch.zeros_like(scale), scale).to_event(1)

        def forward(self, images, slots):
            with images, slots:
                for layer in range(1, self.num_layers + 1):
                    z = pyro.sample(pe.latent_site(layer), self.normal())
            return z

        def refinement_prior(self, model_trace):
            return self.normal()


    class LaplaceLikelihood(nn.Module):
        """Laplace noise around the mask-weighted mean."""

        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, rgb, mask_logits):
            mean = (torch.softmax(mask_logits, dim=-4) * rgb).sum(dim=-4, keepdim=True)
            return dist.Laplace(mean, self.scale).to_event(3)


    @pe.register("prior", "learned_scale")
    def learned_scale_prior(config, *, init=0.5):
        """N(0, s^2) on every layer with a learned s."""
        return LearnedScalePrior(config.z_dim, config.num_layers, init)


    @pe.register("likelihood", "laplace")
    def laplace_likelihood(config, *, scale=0.1):
        """Laplace around the mask-weighted mean."""
        return LaplaceLikelihood(scale)
    '''
)

SMALL = [
    "--set", "num_slots=2", "--set", "z_dim=8", "--set", "num_layers=1",
    "--set", "training.curriculum=[[-1,1]]", "--set", "prior=learned_scale",
    "--set", "likelihood=laplace", "--set", "likelihood_options.scale=0.2",
]  # fmt: skip


def _emorl(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    return subprocess.run(
        [sys.executable, "-m", "pyro_emorl.cli", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("user")
    (root / "my_components.py").write_text(USER_MODULE)
    generate("tetrominoes", root / "data.h5", 8, 4, progress=False)
    return root


def _train(workspace: Path, out: str, steps: int, *extra: str) -> None:
    result = _emorl(
        "train", "--import", "my_components.py", "--preset", "tetrominoes", "--data", "data.h5",
        "--eval-data", "data.h5", "--eval-images", "2", "--eval-every", "0", "--steps",
        str(steps), "--batch-size", "2", "--out", out, "--no-progress", "--no-tensorboard",
        "--figure-every", "0", "--checkpoint-every", "1", *SMALL, *extra, cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_train_resume_evaluate_visualize_with_user_components(workspace: Path) -> None:
    _train(workspace, "straight", 3)
    _train(workspace, "resumed", 2)
    _train(workspace, "resumed", 3, "--resume")

    straight = load_checkpoint(workspace / "straight/checkpoints/step-00000003.pt")
    resumed = load_checkpoint(workspace / "resumed/checkpoints/step-00000003.pt")
    assert straight["components"]["prior"]["name"] == "learned_scale"
    assert straight["components"]["likelihood"]["name"] == "laplace"
    assert straight["components"]["prior"]["source"].endswith(":learned_scale_prior")
    assert straight["config"]["likelihood_options"] == {"scale": 0.2}
    # The prior's own parameter was trained (it moved from its initial value) ...
    raw = straight["model"]["prior.raw_scale"]
    assert not torch.equal(raw, torch.full_like(raw, 0.5))
    # ... and resuming continued exactly: every weight and Adam moment bit for bit.
    for key in ("model", "guide"):
        for name, value in straight[key].items():
            assert torch.equal(value, resumed[key][name]), f"{key}.{name}"
    for a, b in zip(
        straight["optimizer"]["state"].values(), resumed["optimizer"]["state"].values()
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"])

    checkpoint = "straight/checkpoints/step-00000003.pt"
    result = _emorl(
        "evaluate", checkpoint, "--import", "my_components.py", "--data", "data.h5",
        "--num-images", "2", "--batch-size", "2", "--no-progress", "--out", "scores.json",
        cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads((workspace / "scores.json").read_text())
    fg_ari = scores["summary"]["fg_ari"]["mean"]
    assert fg_ari is None or 0.0 <= fg_ari <= 1.0

    result = _emorl(
        "visualize", checkpoint, "--import", "my_components.py", "--data", "data.h5",
        "--num-images", "1", "--out", "figures", "--num-dims", "2", "--num-samples", "2",
        cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert any((workspace / "figures").glob("*.png"))


@pytest.mark.parametrize("command", ["evaluate", "visualize"])
def test_without_import_the_checkpoint_is_refused_in_one_line(
    workspace: Path, command: str
) -> None:
    if not (workspace / "straight/checkpoints/step-00000003.pt").is_file():
        _train(workspace, "straight", 3)
    result = _emorl(
        command, "straight/checkpoints/step-00000003.pt", "--data", "data.h5", "--out",
        f"refused-{command}", cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "the prior 'learned_scale'" in lines[0] and "not registered" in lines[0]
    assert "--import" in lines[0]
    assert not (workspace / f"refused-{command}").exists()


def test_resume_without_import_is_refused_in_one_line(workspace: Path) -> None:
    if not (workspace / "straight/checkpoints/step-00000003.pt").is_file():
        _train(workspace, "straight", 3)
    before = sorted(p.name for p in (workspace / "straight/checkpoints").iterdir())
    result = _emorl(
        "train", "--preset", "tetrominoes", "--data", "data.h5", "--steps", "4", "--out",
        "straight", "--resume", "--no-progress", cwd=workspace,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "not registered" in result.stderr
    assert sorted(p.name for p in (workspace / "straight/checkpoints").iterdir()) == before
