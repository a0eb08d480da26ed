"""benchmarks/vs_official.py without the official checkout: its cases, arguments and helpers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_official.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("vs_official", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["vs_official"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["vs_official"]


def test_cases_and_defaults(vs) -> None:
    assert list(vs.CASES) == [
        "tetrominoes-b32-i3",
        "tetrominoes-b8-i3",
        "multi_dsprites-b8-i1",
        "multi_dsprites-b8-i3",
        "clevr6-b4-i1",
        "clevr6-b4-i3",
        "infer-tetrominoes-b32-i3",
        "infer-tetrominoes-b32-i0",
    ]
    case = vs.CASES["clevr6-b4-i3"]
    assert (case.preset, case.batch_size, case.refine_steps, case.mode) == ("clevr6", 4, 3, "train")
    assert case.official_config == "configs/train/clevr6-96x96/EMORL.json"
    args = vs.parse_args(["--official-dir", "/x/official/"])
    assert args.cases == list(vs.CASES) and args.threads == 2 and args.worker is None
    assert args.official_python == "/x/official-venv/bin/python"
    args = vs.parse_args(["--official-dir", "o", "--cases", "infer-tetrominoes-b32-i0"])
    assert args.cases == ["infer-tetrominoes-b32-i0"]
    assert args.device == "cpu" and args.compile == []
    args = vs.parse_args(["--official-dir", "o", "--device", "cuda", "--compile", "default"])
    assert args.device == "cuda" and args.compile == ["default"]


def test_side_names(vs) -> None:
    assert vs.side_name("float32") == "ours"
    assert vs.side_name("bfloat16") == "ours_bfloat16"
    assert vs.side_name("float32", "default") == "ours_compiled"
    assert vs.side_name("bfloat16", "reduce-overhead") == "ours_bfloat16_compiled-reduce-overhead"


@pytest.mark.parametrize(
    "argv",
    [
        ["--cases", "tetrominoes-b4-i9"],
        ["--rounds", "0"],
        ["--threads", "0"],
        ["--precisions", "float16"],
        ["--precisions", "bfloat16", "bfloat16"],
        ["--compile", "fast"],
        [],
    ],
)
def test_bad_arguments_are_refused(vs, argv) -> None:
    official = [] if not argv else ["--official-dir", "o"]
    with pytest.raises(SystemExit):
        vs.parse_args(official + argv)


def test_training_defaults_are_read_from_the_source(vs) -> None:
    source = (
        "ex = Experiment('TRAINING')\n"
        "@ex.config\n"
        "def cfg():\n"
        "    training = {\n"
        "        'batch_size': 16,  # a comment\n"
        "        'refinement_curriculum': [(-1,3), (100000,1)],\n"
        "        'warmup': 10000,\n"
        "    }\n"
    )
    defaults = vs.official_training_defaults(source)
    assert defaults == {
        "batch_size": 16,
        "refinement_curriculum": [(-1, 3), (100000, 1)],
        "warmup": 10000,
    }
    with pytest.raises(ValueError, match="no `training"):
        vs.official_training_defaults("def cfg():\n    pass\n")


def test_models_must_match_and_ratio(vs) -> None:
    shape = {"K": 4, "image": [3, 35, 35], "z_dim": 32, "log_scale": -1.2039728}
    same = {"model": shape, "geco": True}
    vs.check_same_model(vs.CASES["tetrominoes-b8-i3"], same, same)
    for other in ({"model": {**shape, "K": 5}, "geco": True}, {"model": shape, "geco": False}):
        with pytest.raises(RuntimeError, match="differ"):
            vs.check_same_model(vs.CASES["tetrominoes-b8-i3"], same, other)
    times = {"official": [2.0, 4.0, 3.0], "ours": [1.0, 1.5, 2.0], "ours_bfloat16": [0.6, 0.9]}
    medians, ratios = vs.summarize(times)
    assert medians == {"official": 3.0, "ours": 1.5, "ours_bfloat16": 0.75}
    assert ratios == {"ours": 0.5, "ours_bfloat16": 0.25}
    assert [vs.side_name(p) for p in ("float32", "bfloat16")] == ["ours", "ours_bfloat16"]


def test_a_bad_device_is_refused_before_any_worker_starts(tmp_path) -> None:
    command = [sys.executable, str(SCRIPT), "--official-dir", str(tmp_path), "--device", "gpu"]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip() == "--device gpu: not a device; use cpu, cuda, cuda:N or mps"


def test_efficiency_is_the_counted_flops_over_the_median_over_the_peak(vs) -> None:
    peak = {"float32": {"gflops": 100.0}, "bfloat16": {"gflops": 400.0}}
    flops = {"official": 50 * 10**9, "ours": 50 * 10**9, "ours_bfloat16": 50 * 10**9}
    medians = {"official": 2.0, "ours": 1.0, "ours_bfloat16": 0.5}
    out = vs.efficiency(flops, medians, peak)
    assert out["official"] == {
        "gflop_per_step": 50.0,
        "gflops": 25.0,
        "fraction_of_peak": 0.25,
        "peak_dtype": "float32",
    }
    assert out["ours"]["fraction_of_peak"] == 0.5
    assert out["ours_bfloat16"]["gflops"] == 100.0
    assert out["ours_bfloat16"]["fraction_of_peak"] == 0.25  # against the bfloat16 peak
    without = vs.efficiency(flops, medians, {"float32": peak["float32"]})  # no native bfloat16
    assert without["ours_bfloat16"]["peak_dtype"] == "float32"


def test_step_flops_counts_products_and_convolutions_in_closed_form() -> None:
    import torch

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from _peak import conv_gflops, matmul_gflops, step_flops
    finally:
        sys.path.remove(str(SCRIPT.parent))
    linear = torch.nn.Linear(16, 8)
    conv = torch.nn.Conv2d(3, 4, 5, padding=2)
    x, image = torch.randn(10, 16), torch.randn(2, 3, 12, 12)

    def step() -> None:
        (linear(x).sum() + conv(image).sum()).backward()

    forward = 2 * 10 * 16 * 8 + 2 * (2 * 4 * 12 * 12) * (3 * 5 * 5)
    # backward: as many again for the weights' gradients; none for the inputs, which need none
    assert step_flops(step) == 2 * forward
    x.requires_grad_(True)  # and as many again for an input that needs its gradient
    assert step_flops(step) == 2 * forward + 2 * 10 * 16 * 8
    for rate in (matmul_gflops(sizes=(64,), repeats=1), conv_gflops(sizes=(16,), repeats=1)):
        assert set(rate) == {"gflops", "by_size"}
        assert rate["gflops"] == max(rate["by_size"].values()) > 0
