"""EfficientMORL against IODINE: parameters, training-step time and memory, and test-time
inference speed over several image sizes, both models measured in one run on one machine.

The EfficientMORL paper compares its efficiency with IODINE's (appendix E.3, figure 22):
parameters, and the time of a training step's forward and backward pass at batch 4 over several
image sizes on one RTX 2080 Ti. This script makes the same comparison with this library's two
model families, on the machine it runs on, and prints one JSON object (progress goes to stderr):

* ``params``: the parameters of each model (model and guide together, each counted once), per
  image size;
* ``train``: seconds of one forward and backward pass of the model's own training loss (no
  optimizer step), and images per second: EfficientMORL with its preset's training refinement
  steps (the curriculum's ``I`` at training step ``--curriculum-step``: 3 at step 0, 1 from step
  100,000 for CLEVR6 and Multi-dSprites) and its objective (the refinement ELBO with the official
  step weights, wrapped in GECO where the preset uses GECO, forced active as in most of training);
  IODINE with its own (``I = 5`` and the weights ``linspace(0, 1, 6)`` for the ``iodine_*``
  presets);
* ``infer``: seconds per batch and images per second of test-time inference at each model's own
  test-time refinement steps (``config.refinement_steps``: 1 for EfficientMORL's CLEVR6 and
  Multi-dSprites, 5 for IODINE), ``pe.decompose(..., decode_layers=False)`` under
  ``torch.no_grad()`` in eval mode;
* memory: on the CPU the peak resident set of the worker process (``peak_rss_mb``) and how far
  the timed and warm-up steps raised it above what building the model and the images had
  reached (``rss_delta_mb``); on a GPU ``torch.cuda.max_memory_allocated`` over the steps
  (``peak_gpu_mb``) and its excess over the memory allocated before them (``gpu_delta_mb``);
* ``machine``: the CPU model, core count and load average, threads, torch version, device, GPU.

Each (model, image size, training or inference) runs in a worker process of its own, so that its
peak memory is its own. For each image size the two models' training workers are timed in
interleaved rounds (round r of one, then round r of the other, the order alternating every
round, so background load and clock changes hit both alike), then their inference workers the
same way; the untimed warm-up steps come first. Medians over the rounds are reported, with every
round's time and the ratio IODINE / EfficientMORL. Images are the same random ones in [0, 1] for
both models (same seed).

``--pair`` chooses the presets, each built with ``image_shape=(3, s, s)`` for every size ``s`` of
``--sizes``: ``clevr6`` (default) compares EfficientMORL's ``clevr6`` with ``iodine_clevr6``,
``multi_dsprites`` and ``tetrominoes`` likewise. The default is CLEVR6 because it is the one pair
whose slot count and latent size agree (K = 7, D = 64 in both), so that what differs is the
inference scheme and the networks, not the size of the posterior; and because EfficientMORL's
CLEVR6 architecture (shared with its Multi-dSprites preset) is the one whose parameters the
paper quotes (666K). IODINE's CLEVR6 preset is the TF1 original's CLEVR6 network, the largest of
its three. Note that GECO makes EfficientMORL's CLEVR6 loss its Lagrangian, a negligible cost.

The figures are same-run comparisons on the machine the script runs on; no figure from another
machine (nor the paper's) is quoted or compared here.

The defaults (sizes 32, 64 and 96, batch 4, 1 warm-up step and 3 timed rounds, 2 threads) take
about 5 to 9 minutes on 2 CPU cores: a CPU step grows with the pixels, and at 128x128 one
IODINE training step alone takes tens of seconds there, so 128 is left to ``--sizes`` (it about
doubles the run on a CPU; on a GPU it costs little)::

    python benchmarks/emorl_vs_iodine.py --out emorl_vs_iodine.json
    python benchmarks/emorl_vs_iodine.py --device cuda --sizes 32 64 96 128 --rounds 10 \\
        --warmup 3 --out emorl_vs_iodine-gpu.json
    python benchmarks/emorl_vs_iodine.py --pair tetrominoes --sizes 35
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# benchmarks/ is on sys.path: the worker protocol and the helpers of the official comparison
from vs_official import Worker, cpu_model, images  # noqa: E402

#: The two families, in the order of every table (and of the first round).
FAMILIES = ("emorl", "iodine")

#: ``--pair``: the EfficientMORL preset and the IODINE preset compared.
PAIRS = {
    "clevr6": ("clevr6", "iodine_clevr6"),
    "multi_dsprites": ("multi_dsprites", "iodine_multi_dsprites"),
    "tetrominoes": ("tetrominoes", "iodine_tetrominoes"),
}

MODES = ("train", "infer")


def preset_of(pair: str, family: str) -> str:
    """The preset of ``family`` in ``pair``."""
    return PAIRS[pair][FAMILIES.index(family)]


def model_parameters(model, guide) -> list:  # -> list[torch.nn.Parameter]
    """The parameters of model and guide, each once (a module the two share counts once)."""
    unique = {id(p): p for module in (model, guide) for p in module.parameters()}
    return list(unique.values())


# -- the worker: one model, one image size, training or inference ------------------------------


def build_step(args: argparse.Namespace) -> tuple[Callable[[], None], dict]:
    """The timed step of this worker, and what it reports about its model."""
    import pyro
    import torch

    import pyro_emorl as pe
    from pyro_emorl.infer import RefinementCurriculum, build_objective

    pyro.enable_validation(False)  # as train.fit does while training
    pyro.set_rng_seed(args.seed)
    preset = preset_of(args.pair, args.worker)
    config = pe.presets.get(preset, image_shape=(3, args.size, args.size))
    model, guide = pe.build(config)
    model.to(args.device)
    guide.to(args.device)
    params = model_parameters(model, guide)
    elbo, geco = build_objective(config.objective_settings())
    x = images(args.seed, args.batch_size, config.image_shape).to(args.device)

    if args.mode == "train":
        steps = RefinementCurriculum(config.training.curriculum)(args.curriculum_step)
        elbo.num_steps = steps
        objective = elbo
        if geco is not None:
            geco.to(args.device)
            geco.num_updates.fill_(geco.warm_start + 1)  # GECO active, as in most of training
            objective = geco

        def step() -> None:
            for p in params:
                p.grad = None
            objective.differentiable_loss(model, guide, x).backward()

    else:
        steps = config.refinement_steps
        model.eval()
        guide.eval()

        def step() -> None:
            with torch.no_grad():
                pe.decompose(model, guide, x, num_steps=steps, elbo=elbo, decode_layers=False)

    info = {
        "preset": preset,
        "params": sum(p.numel() for p in params),
        "refinement_steps": steps,
        "geco": geco is not None and args.mode == "train",
        "model": {"K": config.num_slots, "z_dim": config.z_dim, "likelihood": config.likelihood},
    }
    return step, info


def worker(args: argparse.Namespace) -> None:
    """Build the step, then answer ``run N`` (seconds of N steps) and ``quit`` (peak memory)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to stderr

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")

    try:
        import torch

        torch.set_num_threads(args.threads)
        step, info = build_step(args)
        cuda = torch.device(args.device).type == "cuda"
        # a GPU runs asynchronously: N steps end when their kernels have finished
        synchronize = torch.cuda.synchronize if cuda else lambda: None
        setup = {"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if cuda:
            synchronize()
            setup["gpu_mb"] = torch.cuda.memory_allocated(args.device) / 2**20
            torch.cuda.reset_peak_memory_stats(args.device)
        gpu = torch.cuda.get_device_name(args.device) if cuda else None
        threads = torch.get_num_threads()
        send({"ready": True, "torch": torch.__version__, "threads": threads, "gpu": gpu, **info})
        for line in sys.stdin:
            command, *count = line.split()
            if command == "quit":
                break
            synchronize()
            start = time.perf_counter()
            for _ in range(int(count[0])):
                step()
            synchronize()
            send({"seconds": time.perf_counter() - start})
        peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        peak["rss_delta_mb"] = peak["peak_rss_mb"] - setup["rss_mb"]
        if cuda:
            peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated(args.device) / 2**20
            peak["gpu_delta_mb"] = peak["peak_gpu_mb"] - setup["gpu_mb"]
        send(peak)
    except Exception:
        send({"error": traceback.format_exc()})
        sys.exit(1)


# -- the parent ----------------------------------------------------------------------------------


class Side(Worker):
    """The worker process of one family, one image size and one mode, and its line protocol."""

    def __init__(self, family: str, mode: str, size: int, args: argparse.Namespace) -> None:
        self.side = f"{family} {mode} {size}x{size}"
        command = [sys.executable, os.path.abspath(__file__), "--worker", family]
        command += ["--mode", mode, "--size", str(size), "--pair", args.pair]
        for flag in ("batch_size", "threads", "device", "seed", "curriculum_step"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        env["MKL_NUM_THREADS"] = str(args.threads)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )


def summarize(times: dict[str, list[float]], batch_size: int) -> dict:
    """Median seconds per call of each family, images per second, the ratio IODINE /
    EfficientMORL, and every round's seconds."""
    medians = {family: statistics.median(t) for family, t in times.items()}
    return {
        "s_median": medians,
        "images_per_s": {family: batch_size / m for family, m in medians.items()},
        "ratio_iodine_over_emorl": medians["iodine"] / medians["emorl"],
        "s_all": {family: [round(s, 5) for s in t] for family, t in times.items()},
    }


def run_mode(mode: str, size: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """Time both families' ``mode`` workers at ``size`` in interleaved rounds; the summary and
    what each worker reported when it was ready."""
    sides = {family: Side(family, mode, size, args) for family in FAMILIES}
    try:
        ready = {family: side.receive() for family, side in sides.items()}
        for side in sides.values():  # the untimed warm-up, side by side
            side.send(f"run {args.warmup}")
        for side in sides.values():
            side.receive()
        times: dict[str, list[float]] = {family: [] for family in FAMILIES}
        for r in range(args.rounds):
            for family in FAMILIES if r % 2 == 0 else FAMILIES[::-1]:
                times[family].append(sides[family].request("run 1")["seconds"])
            line = ", ".join(f"{family} {t[-1]:.3f} s" for family, t in times.items())
            print(f"  {size}x{size} {mode} round {r + 1}/{args.rounds}: {line}", file=sys.stderr)
        peaks = {family: side.request("quit") for family, side in sides.items()}
    finally:
        for side in sides.values():
            side.close()
    result = {
        "refinement_steps": {family: ready[family]["refinement_steps"] for family in FAMILIES},
        **summarize(times, args.batch_size),
    }
    for key in ("peak_rss_mb", "rss_delta_mb", "peak_gpu_mb", "gpu_delta_mb"):
        if key in peaks["emorl"]:
            result[key] = {family: round(peaks[family][key], 1) for family in FAMILIES}
    if mode == "train":
        result["geco"] = {family: ready[family]["geco"] for family in FAMILIES}
    return result, ready


def run_size(size: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """Both modes at one image size; the result and the training workers' ready messages."""
    result: dict = {"size": size, "image_shape": [3, size, size]}
    train, ready = run_mode("train", size, args)
    result["params"] = {family: ready[family]["params"] for family in FAMILIES}
    result["train"] = train
    result["infer"], _ = run_mode("infer", size, args)
    return result, ready


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pair", choices=list(PAIRS), default="clevr6", help="the presets compared (see above)"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[32, 64, 96], metavar="S", help="image sizes"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per model and mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per worker first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--curriculum-step",
        type=int,
        default=0,
        help="the training step whose curriculum I the training loss uses (default 0: I = 3 "
        "for EfficientMORL; 100000: I = 1 for CLEVR6 and Multi-dSprites)",
    )
    parser.add_argument("--out", help="also write the JSON to this file (atomically)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--worker", choices=FAMILIES, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.sizes) < 8 or args.batch_size < 1 or args.threads < 1 or args.rounds < 1:
        parser.error("--sizes must be >= 8, --batch-size, --threads and --rounds >= 1")
    if args.warmup < 0 or args.curriculum_step < 0:
        parser.error("--warmup and --curriculum-step must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    import torch

    from pyro_emorl.data.atomic import atomic_path, check_output
    from pyro_emorl.devices import check_device

    try:
        check_device(args.device)  # before starting any worker
        if args.out is not None:
            check_output(args.out, overwrite=args.overwrite)
    except (OSError, ValueError) as error:
        sys.exit(str(error))
    load_before = os.getloadavg()
    start = time.perf_counter()
    sizes, ready = [], {}
    for size in args.sizes:
        print(f"{size}x{size} ...", file=sys.stderr)
        result, ready = run_size(size, args)
        sizes.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)  # kept if a later size fails
    report = {
        "benchmark": "emorl_vs_iodine",
        "pair": args.pair,
        "models": {
            family: {
                "preset": ready[family]["preset"],
                **ready[family]["model"],
                "train_refinement_steps": sizes[-1]["train"]["refinement_steps"][family],
                "test_refinement_steps": sizes[-1]["infer"]["refinement_steps"][family],
                "geco": ready[family]["geco"],
            }
            for family in FAMILIES
        },
        "settings": {
            "sizes": args.sizes,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
            "warmup_steps": args.warmup,
            "curriculum_step": args.curriculum_step,
            "seed": args.seed,
        },
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": ready["emorl"]["threads"],
            "torch": ready["emorl"]["torch"],
            "python": platform.python_version(),
            "device": args.device,
            "gpu": ready["emorl"]["gpu"],
            "cuda": torch.version.cuda,
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
        },
        "seconds": round(time.perf_counter() - start, 1),
        "sizes": sizes,
    }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
