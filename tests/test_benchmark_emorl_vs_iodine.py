"""benchmarks/emorl_vs_iodine.py end to end at the tiniest settings: its JSON, its parameter
counts against freshly built models, and its refusal to replace an existing ``--out`` file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pyro_emorl as pe
from pyro_emorl.infer import RefinementCurriculum

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "emorl_vs_iodine.py"
PRESETS = {"emorl": "tetrominoes", "iodine": "iodine_tetrominoes"}
SIZE = 16
TINY = ["--pair", "tetrominoes", "--sizes", str(SIZE), "--batch-size", "1", "--rounds", "1"]
TINY += ["--warmup", "0", "--threads", "1"]


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "emorl_vs_iodine.json"
    done = run(*TINY, "--out", str(out))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert json.loads(out.read_text()) == printed  # the file holds what was printed
    return printed, out


def fresh_parameters(preset: str) -> int:
    """The parameters of the preset's model and guide at SIZE x SIZE, each counted once."""
    model, guide = pe.build(pe.presets.get(preset, image_shape=(3, SIZE, SIZE)))
    unique = {id(p): p for module in (model, guide) for p in module.parameters()}
    return sum(p.numel() for p in unique.values())


def test_structure_and_parameters(result) -> None:
    report, _ = result
    assert report["benchmark"] == "emorl_vs_iodine" and report["pair"] == "tetrominoes"
    assert report["settings"]["sizes"] == [SIZE] and report["settings"]["batch_size"] == 1
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["threads"] == 1 and machine["cpu"]
    assert machine["torch"] and machine["gpu"] is None
    (size,) = report["sizes"]
    assert size["size"] == SIZE and size["image_shape"] == [3, SIZE, SIZE]
    for family, preset in PRESETS.items():
        config = pe.presets.get(preset)
        model = report["models"][family]
        assert model["preset"] == preset and model["K"] == config.num_slots
        assert size["params"][family] == fresh_parameters(preset)
        train_steps = RefinementCurriculum(config.training.curriculum)(0)
        assert size["train"]["refinement_steps"][family] == train_steps
        assert size["infer"]["refinement_steps"][family] == config.refinement_steps
        geco = getattr(config, "geco", None) is not None  # IODINE's configuration has none
        assert model["geco"] == size["train"]["geco"][family] == geco
    for mode in ("train", "infer"):
        timing = size[mode]
        for family in PRESETS:
            (seconds,) = timing["s_all"][family]
            median = timing["s_median"][family]
            # one round: its median is its time, which s_all rounds to 5 decimals
            assert seconds > 0 and median == pytest.approx(seconds, abs=6e-6)
            assert timing["images_per_s"][family] == pytest.approx(1 / median, rel=1e-4)
            assert timing["peak_rss_mb"][family] > 0 and timing["rss_delta_mb"][family] >= 0
        ratio = timing["s_median"]["iodine"] / timing["s_median"]["emorl"]
        assert timing["ratio_iodine_over_emorl"] == pytest.approx(ratio)
        assert "peak_gpu_mb" not in timing


def test_an_existing_out_file_is_refused(result) -> None:
    _, out = result
    before = out.read_text()
    done = run(*TINY, "--out", str(out))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (
        f"--out {out} exists: pass --overwrite to replace it, or choose another file"
    )
    assert out.read_text() == before
