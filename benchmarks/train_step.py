"""Milliseconds per EfficientMORL training step, and peak memory, per preset.

A step is what the official training loop does: forward (refinement ELBO wrapped in GECO, GECO
active), backward, gradient clipping at 5.0, Adam, GECO update. Each preset runs in its own
subprocess so its peak RSS is its own. Within a process the library's step is interleaved with a
baseline step computed the way the official code computes it (the first decoder convolution on the
tiled latent, every convolution in the default contiguous layout) and the ratio of medians is
reported.

    python benchmarks/train_step.py --preset tetrominoes --batch-size 32 --refine-steps 3

``--precision bfloat16`` (or ``auto``) runs the convolutions of every variant under bfloat16
autocast, as ``RunOptions(precision=...)`` does in training. ``--profile`` adds a
``torch.profiler`` summary of the library's step: the share of self CPU time spent in
convolutions (forward and backward), matrix products and everything else, and
the ten most expensive operators. ``--compile`` adds a variant whose encoder and decoder
forwards go through ``torch.compile`` (inductor), timed interleaved with the eager step; the
seconds its first (compiling) calls took are reported apart, as ``compile_seconds``.

This is library-only timing against an in-process baseline. A comparison with the official
implementation needs both measured in the same run on the same machine; no official figure from
another machine is quoted here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pyro  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _compile import compile_conv_stacks  # noqa: E402  (benchmarks/ is on sys.path)
from _presets import run_per_preset  # noqa: E402

import pyro_emorl as pe  # noqa: E402
import pyro_emorl.nn.decoder as decoder_module  # noqa: E402
import pyro_emorl.nn.encoder as encoder_module  # noqa: E402
from pyro_emorl.nn.decoder import SpatialBroadcastDecoder  # noqa: E402
from pyro_emorl.nn.positional import position_grid  # noqa: E402
from pyro_emorl.nn.precision import PRECISIONS, resolve_precision, set_conv_dtype  # noqa: E402


def tiled_first_layer(decoder: SpatialBroadcastDecoder, z: torch.Tensor) -> torch.Tensor:
    """Baseline: convolve the tiled latent plus positions (the official computation)."""
    hg, wg = decoder.grid_size
    grid = position_grid(hg, wg, device=z.device, dtype=z.dtype)
    positions = decoder.position_projection(grid).permute(2, 0, 1)
    tiled = z[:, :, None, None] + positions
    conv = decoder.convs[0]
    return F.conv2d(tiled, conv.weight, conv.bias, padding=decoder.padding)


_channels_last = decoder_module.cpu_channels_last


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def make_step(
    config: pe.EMORLConfig,
    batch_size: int,
    refine_steps: int,
    baseline: bool,
    precision: str,
    compile_convs: bool = False,
):
    model, guide = pe.build(config)
    for module in (model, guide):  # as train.fit does with RunOptions(precision=...)
        set_conv_dtype(module, resolve_precision(precision, torch.device("cpu")))
    if compile_convs:
        compile_conv_stacks((model, guide))
    if baseline and isinstance(model.decoder, SpatialBroadcastDecoder):
        decoder = model.decoder
        decoder._first_layer = lambda z: tiled_first_layer(decoder, z)  # type: ignore[method-assign]
    elbo = pe.infer.RefinementELBO(num_steps=refine_steps)
    objective = elbo
    if config.geco is not None:
        g = config.geco
        objective = pe.infer.GECO(
            elbo,
            g.target_per_element,
            config.image_shape,
            convention=g.convention,
            warm_start=g.warm_start,
        )
        objective.num_updates.fill_(g.warm_start + 1)  # GECO active, as in most of training
    loss_fn = objective(model, guide)
    params = [p for p in loss_fn.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=4e-4)
    images = torch.rand(batch_size, *config.image_shape)

    def step() -> None:
        if baseline:  # the official layout: no channels-last conversion
            decoder_module.cpu_channels_last = encoder_module.cpu_channels_last = _identity
        else:
            decoder_module.cpu_channels_last = encoder_module.cpu_channels_last = _channels_last
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(images)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.training.clip_grad_norm)
        optimizer.step()
        if isinstance(objective, pe.infer.GECO):
            objective.update()

    return step


#: Operator-name fragments that mark a convolution and a matrix product (forward or backward).
_CONVOLUTION = ("conv",)
_MATMUL = ("addmm", "::mm", "bmm", "matmul", "linear")


def profile_summary(step, repeats: int) -> dict:
    """Where a step's CPU time goes: self time per category over ``repeats`` profiled steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    # self time counts each microsecond once, in the operator that spent it
    ops = [(e.key, e.self_cpu_time_total) for e in prof.key_averages()]
    total = sum(t for _, t in ops)
    shares = {"convolution": 0.0, "matmul": 0.0, "other": 0.0}
    for name, t in ops:
        category = (
            "convolution"
            if any(k in name for k in _CONVOLUTION)
            else "matmul"
            if any(k in name for k in _MATMUL)
            else "other"
        )
        shares[category] += t / total
    top = sorted(ops, key=lambda op: -op[1])[:10]
    return {
        "self_cpu_ms_per_step": total / 1000 / repeats,
        "share": {k: round(v, 3) for k, v in shares.items()},
        "top_ops_ms_per_step": {name: round(t / 1000 / repeats, 1) for name, t in top},
    }


def worker(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    pyro.enable_validation(False)
    torch.manual_seed(0)
    preset = args.preset[0]
    config = pe.presets.get(preset)
    shape = (config, args.batch_size, args.refine_steps)
    variants = {"pyro_emorl": make_step(*shape, False, args.precision)}
    if not args.no_baseline:
        variants["baseline_tiled_conv"] = make_step(*shape, True, args.precision)
    if args.compile:
        variants["pyro_emorl_compiled"] = make_step(*shape, False, args.precision, True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    warmup_seconds: dict[str, float] = {}
    for name, step in variants.items():
        start = time.perf_counter()
        for _ in range(max(args.warmup, 1 if name == "pyro_emorl_compiled" else 0)):
            step()
        warmup_seconds[name] = time.perf_counter() - start
    for _ in range(args.repeats):  # interleaved, so background load hits every variant alike
        for name, step in variants.items():
            start = time.perf_counter()
            step()
            times[name].append(1000 * (time.perf_counter() - start))
    result = {
        "preset": preset,
        "batch_size": args.batch_size,
        "refine_steps": args.refine_steps,
        "threads": args.threads,
        "precision": args.precision,
        "repeats": args.repeats,
        "ms_per_step_median": {k: statistics.median(v) for k, v in times.items()},
        "ms_per_step_all": {k: [round(t, 1) for t in v] for k, v in times.items()},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    med = result["ms_per_step_median"]
    if "baseline_tiled_conv" in times:
        result["ratio_vs_baseline"] = med["pyro_emorl"] / med["baseline_tiled_conv"]
    if "pyro_emorl_compiled" in times:
        result["compiled_ratio_vs_eager"] = med["pyro_emorl_compiled"] / med["pyro_emorl"]
        # the warm-up steps' time beyond what as many compiled steps take once compiled
        compiled_steps = max(args.warmup, 1) * med["pyro_emorl_compiled"] / 1000
        result["compile_seconds"] = warmup_seconds["pyro_emorl_compiled"] - compiled_steps
    if args.profile:
        result["profile"] = profile_summary(variants["pyro_emorl"], args.repeats)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", nargs="+", default=["tetrominoes"], choices=pe.presets.names())
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--refine-steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="time only the library step")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="dtype of every variant's convolutions (as `emorl train --precision`)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="add a torch.profiler summary of the step"
    )
    parser.add_argument(
        "--compile", action="store_true", help="add a variant with torch.compile'd conv stacks"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    flags = []
    for flag in ("batch_size", "refine_steps", "repeats", "warmup", "threads", "precision"):
        flags += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for flag in ("no_baseline", "profile", "compile"):
        if getattr(args, flag):
            flags.append(f"--{flag.replace('_', '-')}")
    results = run_per_preset(__file__, args.preset, flags)
    print(json.dumps({"benchmark": "train_step", "results": results}, indent=2))


if __name__ == "__main__":
    main()
