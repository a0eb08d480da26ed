"""Seconds per step of the official EfficientMORL code and of pyro_emorl, side by side in one run.

Each case starts two worker processes, one per implementation, with the same shapes, the same
random images (same seed) and the same thread count, and times them in interleaved rounds
(round r of one, then round r of the other, the order alternating every round, so background
load and frequency changes hit both alike). Warm-up steps are not timed. Per case it reports
both medians, the ratio ours / official, each worker's peak RSS and trainable parameter count,
the CPU model, the thread count and both torch versions, as one JSON object on stdout (progress,
and each case's JSON as soon as it is measured, go to stderr).

The figures are same-run ratios on the machine the script runs on; no figure from another
machine is quoted or compared.

``--precisions float32 bfloat16`` times this library once per precision of its convolutions
(``bfloat16``: autocast of the encoder's and decoder's convolution stacks, as
``RunOptions(precision="bfloat16")`` trains; see ``pyro_emorl.nn.precision``), each in its own
process, interleaved with the official side in the same rounds; the official code runs in
float32 throughout. Each variant's ratio is against that same official median.

``--compile MODE ...`` adds, per precision, a variant whose convolution stacks go through
``torch.compile`` in each mode named (``reduce-overhead`` replays CUDA graphs on a GPU); the
first steps of every side run side by side, untimed, and their seconds are reported apart
(``warmup_seconds``: for a compiled variant, mostly its compile time). A variant of ours that
fails is dropped with its error (``failed``) and the others are still timed.

``--device cuda`` runs both implementations on the GPU (each round ends with
``torch.cuda.synchronize()``) and adds each side's peak GPU memory (``peak_gpu_mb``); the
official model is moved to the device before its optimizer is built, as its ``train.py`` does.

Each case also counts the FLOPs of one step of each side (matrix products and convolutions,
forward and backward, as ``torch.utils.flop_counter`` counts them; one untimed step) and reports
under ``efficiency`` the GFLOP/s each side achieves at its median and that as a fraction of the
machine's practical peak: the better of square matrix products (MKL on a CPU) and 1x1
convolutions (oneDNN; MKL takes slower paths on AMD CPUs) measured in the same run, with the
same threads, before the cases (``matmul_peak``; measured again after them, to show drift), in
float32, and in bfloat16 where the CPU computes it natively (the peak a bfloat16 side is held
against).

What a step is, on each side:

* training (``tetrominoes-b32-i3`` ...): the official ``train.py`` loop body (zero_grad, forward in
  training mode with GECO active, backward, the LR scheduler, ``clip_grad_norm_`` at 5, Adam,
  the GECO EMA / beta update) against ``pyro_emorl.train.TrainStep`` built as ``train.fit``
  builds it (fused Adam, the official LR schedule, clipping at 5, the GECO update). GECO is
  forced active in both (step counter / ``num_updates`` at the warm start, so the warm-up step
  initialises the EMA and every timed step runs the constrained objective and the beta update)
  wherever the preset uses GECO; Multi-dSprites uses none in either. ``I`` is fixed per case.
* inference (``infer-tetrominoes-b32-i3``, ``-i0``): ``pe.decompose`` under ``torch.no_grad()``
  (refining with GECO's objective, as the official evaluation does) against the official
  forward in eval mode at the same number of refinement steps, as ``eval.py`` calls it
  (``global_step = geco_warm_start + 1``, ``kl_beta = 1``). At ``I = 0`` the official forward runs
  under ``torch.no_grad()``; at ``I > 0`` it cannot (its refinement network takes
  ``torch.autograd.grad`` of the loss), so it runs with gradients enabled, as in ``eval.py``.
  ``pe.decompose`` runs with ``decode_layers=False``: like the official forward (without
  ``debug=True``) it does not decode the sample of every bottom-up layer.

The official model is imported from ``--official-dir`` (never copied) and built through a sacred
``Experiment`` with the data-set and network ingredients, ``train.py``'s own training defaults
(read from its source) and the preset's ``configs/train/<data set>/EMORL.json`` as config updates,
exactly what ``python train.py with <json>`` does. Both run single-process, on the CPU or on
``--device`` (the official loop's DistributedDataParallel/NCCL wrapper is left out, as
``TrainStep`` runs without its ``sync``).

Prepare the official checkout (commit 67939f0) and its own virtual environment, outside this
repository::

    git clone https://github.com/pemami4911/EfficientMORL.git /work/official
    git -C /work/official checkout 67939f0
    python3 -m venv /work/official-venv
    /work/official-venv/bin/pip install torch==2.13.0 "setuptools<81" sacred h5py pillow \\
        scipy numpy warmup-scheduler

(the pinned torch is the CPU build this repository's venv uses; sacred needs setuptools < 81
for ``pkg_resources``; ``warmup-scheduler`` is the ``GradualWarmupScheduler`` the official
``train.py`` imports). Then, from this repository's venv::

    python benchmarks/vs_official.py --official-dir /work/official
    python benchmarks/vs_official.py --official-dir /work/official \\
        --official-python /work/official-venv/bin/python --cases tetrominoes-b32-i3 --rounds 20

``--official-python`` defaults to ``<official-dir>-venv/bin/python``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

OFFICIAL_COMMIT = "67939f0"


@dataclass(frozen=True)
class Case:
    """One comparison: a preset, a batch size, a number of refinement steps, train or infer."""

    name: str
    preset: str  # pyro_emorl preset
    official_config: str  # the official train config, relative to the official checkout
    batch_size: int
    refine_steps: int
    mode: str  # "train" or "infer"


_OFFICIAL_CONFIGS = {
    "tetrominoes": "configs/train/tetrominoes/EMORL.json",
    "multi_dsprites": "configs/train/multi_dsprites/EMORL.json",
    "clevr6": "configs/train/clevr6-96x96/EMORL.json",
}


def _case(preset: str, batch_size: int, refine_steps: int, mode: str = "train") -> Case:
    prefix = "infer-" if mode == "infer" else ""
    name = f"{prefix}{preset}-b{batch_size}-i{refine_steps}"
    return Case(name, preset, _OFFICIAL_CONFIGS[preset], batch_size, refine_steps, mode)


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        _case("tetrominoes", 32, 3),
        _case("tetrominoes", 8, 3),
        _case("multi_dsprites", 8, 1),
        _case("multi_dsprites", 8, 3),
        _case("clevr6", 4, 1),
        _case("clevr6", 4, 3),
        _case("tetrominoes", 32, 3, "infer"),
        _case("tetrominoes", 32, 0, "infer"),
    )
}


def official_training_defaults(train_py: str) -> dict:
    """The ``training`` dict of the sacred config scope ``cfg`` in the official ``train.py``.

    It is a literal, read from the source: importing ``train.py`` would start its run (it reads
    ``LOCAL_RANK`` and imports TensorBoard, torchvision and the CLEVRTex code at import time).
    """
    for node in ast.walk(ast.parse(train_py)):
        if isinstance(node, ast.FunctionDef) and node.name == "cfg":
            for statement in node.body:
                if (
                    isinstance(statement, ast.Assign)
                    and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)
                    and statement.targets[0].id == "training"
                ):
                    return ast.literal_eval(statement.value)
    raise ValueError("no `training = {...}` in a `cfg` function of the official train.py")


def images(seed: int, batch_size: int, shape: Sequence[int]):  # -> torch.Tensor
    """The benchmark's images in [0, 1], the same in both workers."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch_size, *shape, generator=generator)


# -- workers (each in its own process; only stdlib at module level, so both venvs can run it) --


def _ours(
    case: Case, seed: int, precision: str, device: str, compile_mode: str | None
) -> tuple[Callable[[], None], dict]:
    import pyro
    import torch
    from _compile import compile_conv_stacks  # benchmarks/ is on sys.path

    import pyro_emorl as pe
    from pyro_emorl.infer import RefinementCurriculum, build_objective, official_lr_factor
    from pyro_emorl.nn import resolve_precision, set_conv_dtype
    from pyro_emorl.train import TrainStep

    pyro.enable_validation(False)  # as train.fit does while training
    pyro.set_rng_seed(seed)
    config = pe.presets.get(case.preset).replace(
        training={"batch_size": case.batch_size, "curriculum": ((-1, case.refine_steps),)}
    )
    model, guide = pe.build(config)
    model.to(device)
    guide.to(device)
    for module in (model, guide):  # as train.fit does with RunOptions(precision=...)
        set_conv_dtype(module, resolve_precision(precision, torch.device(device)))
    if compile_mode is not None:
        compile_conv_stacks((model, guide), compile_mode)
    elbo, geco = build_objective(config.objective_settings())
    loss_module = (elbo if geco is None else geco)(model, guide).to(device)
    params = [p for p in loss_module.parameters() if p.requires_grad]
    x = images(seed, case.batch_size, config.image_shape).to(device)

    if case.mode == "infer":
        model.eval()
        guide.eval()
        if geco is not None:
            geco.num_updates.fill_(geco.warm_start + 1)  # as eval.py's global_step
        objective = None if geco is None else geco.objective

        def step() -> None:
            with torch.no_grad():
                pe.decompose(
                    model,
                    guide,
                    x,
                    num_steps=case.refine_steps,
                    objective=objective,
                    elbo=elbo,
                    decode_layers=False,  # what the official forward computes
                )

    else:
        training = config.training
        optimizer = torch.optim.Adam(params, lr=training.lr, fused=True)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: official_lr_factor(s, training.warmup_steps, training.lr_half_life),
        )
        if geco is not None:
            geco.num_updates.fill_(geco.warm_start)  # GECO active; the first step starts the EMA
        train_step = TrainStep(
            model,
            guide,
            elbo,
            geco,
            optimizer,
            scheduler,
            params,
            training.clip_grad_norm,
            RefinementCurriculum(training.curriculum),
        )
        counter = [0]

        def step() -> None:
            train_step(x, counter[0])
            counter[0] += 1

    info = {
        "params": sum(p.numel() for p in params),
        "geco": geco is not None,
        "model": {
            "K": config.num_slots,
            "image": list(config.image_shape),
            "z_dim": config.z_dim,
            "log_scale": config.log_scale,
            "likelihood": config.likelihood,
        },
    }
    return step, info


def _official(
    case: Case, seed: int, official_dir: str, device: str
) -> tuple[Callable[[], None], dict]:
    import logging
    import warnings

    for message in (
        "pkg_resources is deprecated",  # sacred's import
        "The epoch parameter in `scheduler.step()`",  # train.py passes the step
        "Detected call of `lr_scheduler.step()` before",  # train.py's order, kept
    ):
        warnings.filterwarnings("ignore", message=re.escape(message))
    sys.path.insert(0, official_dir)
    import torch
    from sacred import SETTINGS, Experiment

    SETTINGS.CAPTURE_MODE = "no"  # stdout is this worker's protocol channel
    from lib.datasets import ds  # noqa: I001  (the official package, from official_dir)
    from lib.geco import GECO
    from lib.model import EfficientMORL, net
    from warmup_scheduler import GradualWarmupScheduler

    root = Path(official_dir)
    defaults = official_training_defaults((root / "train.py").read_text())
    updates = json.loads((root / case.official_config).read_text())  # `train.py with <json>`
    updates["seed"] = seed
    updates["training"]["batch_size"] = case.batch_size
    ex = Experiment("TRAINING", ingredients=[ds, net], save_git_info=False)
    ex.add_config({"training": defaults})
    logger = logging.getLogger("vs_official.sacred")
    logger.setLevel(logging.ERROR)  # "No observers have been added"
    ex.logger = logger
    built: dict = {}

    @ex.main
    def build(training, seed, _run) -> None:  # train.py's run(), up to its training loop
        model = EfficientMORL(batch_size=training["batch_size"], use_geco=training["use_geco"])
        model = model.to(device)  # before the optimizer, as train.py does
        model_geco = None
        if training["use_geco"]:
            C, H, W = model.input_size
            recon_target = training["geco_reconstruction_target"] * (C * H * W)
            model_geco = GECO(
                recon_target, training["geco_ema_alpha"], training["geco_step_size_acceleration"]
            )
        model_opt = torch.optim.Adam(model.parameters(), lr=training["lr"])
        scheduler_warmup = None
        if training["use_scheduler"]:
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                model_opt, lr_lambda=lambda epoch: 0.5 ** (epoch / 100000)
            )
            scheduler_warmup = GradualWarmupScheduler(
                model_opt, multiplier=1, total_epoch=training["warmup"], after_scheduler=scheduler
            )
        built.update(
            model=model,
            geco=model_geco,
            opt=model_opt,
            scheduler=scheduler_warmup,
            training=dict(training),
        )

    ex.run(config_updates=updates)
    model, geco, opt = built["model"], built["geco"], built["opt"]
    scheduler, training = built["scheduler"], built["training"]
    model.refinement_iters = case.refine_steps  # what the curriculum sets in train.py
    kl_beta = training["kl_beta_init"]
    x = images(seed, case.batch_size, model.input_size).to(device) * 2 - 1  # the official [-1, 1]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    info = {
        "params": trainable,
        "geco": geco is not None,
        "model": {
            "K": model.K,
            "image": list(model.input_size),
            "z_dim": model.z_size,
            "log_scale": float(model.gmm_log_scale),
            "likelihood": model.image_likelihood,
        },
    }

    if case.mode == "infer":
        model.eval()
        grad = case.refine_steps > 0  # its refinement takes autograd.grad of the loss

        def step() -> None:
            with torch.set_grad_enabled(grad):
                model(x, geco, model.geco_warm_start + 1, 1)  # as eval.py calls it

        return step, info

    model.train()
    counter = [model.geco_warm_start]  # GECO active; the first step initialises the EMA

    def step() -> None:  # the body of train.py's training loop, without the logging
        s = counter[0]
        opt.zero_grad()
        out_dict = model(x, geco, s, kl_beta)
        total_loss = out_dict["total_loss"]
        total_loss.backward()
        if training["use_scheduler"]:
            scheduler.step(s)
        if training["clip_grad_norm"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
        opt.step()
        if training["use_geco"]:
            if s == model.geco_warm_start:
                model.geco_C_ema = geco.init_ema(model.geco_C_ema, out_dict["nll"])
            elif s > model.geco_warm_start:
                model.geco_C_ema = geco.update_ema(model.geco_C_ema, out_dict["nll"])
                model.geco_beta = geco.step_beta(
                    model.geco_C_ema, model.geco_beta, training["geco_beta_stepsize"]
                )
        counter[0] += 1

    return step, info


def peak_worker(args: argparse.Namespace) -> None:
    """Print the practical peak GFLOP/s of this machine at ``--threads`` (the better of square
    matrix products and 1x1 convolutions; float32, and bfloat16 where the CPU computes it
    natively or on a GPU) as one JSON line."""
    import torch
    from _peak import practical_peak

    from pyro_emorl.nn import cpu_has_native_bf16

    torch.set_num_threads(args.threads)
    dtypes = {"float32": torch.float32}
    # kernels held to AVX2 (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY) emulate bfloat16 too
    held = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper() not in ("ALL", "DEFAULT")
    if torch.device(args.device).type == "cuda" or (cpu_has_native_bf16() and not held):
        dtypes["bfloat16"] = torch.bfloat16
    print(json.dumps({name: practical_peak(d, args.device) for name, d in dtypes.items()}))


def measure_peak(args: argparse.Namespace) -> dict:
    """`peak_worker` in its own process, with the workers' thread settings."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    command = [sys.executable, os.path.abspath(__file__), "--worker", "peak"]
    command += ["--threads", str(args.threads), "--device", args.device]
    command += ["--official-dir", args.official_dir]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def efficiency(flops: dict[str, int], medians: dict[str, float], peak: dict) -> dict:
    """Per side: GFLOP per step, GFLOP/s achieved, and that as a fraction of the machine's
    practical peak (the bfloat16 peak for a bfloat16 side where there is one)."""
    out = {}
    for side, count in flops.items():
        achieved = count / medians[side] / 1e9
        dtype = "bfloat16" if "bfloat16" in side and "bfloat16" in peak else "float32"
        out[side] = {
            "gflop_per_step": round(count / 1e9, 3),
            "gflops": round(achieved, 1),
            "fraction_of_peak": round(achieved / peak[dtype]["gflops"], 3),
            "peak_dtype": dtype,
        }
    return out


def worker(args: argparse.Namespace) -> None:
    """Build one side of a case, then answer ``run N`` / ``quit`` lines on stdin."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to stderr

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")

    try:
        import torch

        torch.set_num_threads(args.threads)
        case = CASES[args.case]
        if args.worker == "ours":
            step, info = _ours(case, args.seed, args.precision, args.device, args.compile_mode)
        else:
            step, info = _official(case, args.seed, args.official_dir, args.device)
        cuda = torch.device(args.device).type == "cuda"
        # a GPU runs asynchronously: a round ends when its kernels have finished
        synchronize = torch.cuda.synchronize if cuda else lambda: None
        threads = torch.get_num_threads()
        gpu = torch.cuda.get_device_name(args.device) if cuda else None
        send({"ready": True, "torch": torch.__version__, "threads": threads, "gpu": gpu, **info})
        for line in sys.stdin:
            command = line.split()
            if command[0] == "run":
                synchronize()
                start = time.perf_counter()
                for _ in range(int(command[1])):
                    step()
                synchronize()
                send({"seconds": time.perf_counter() - start})
            elif command[0] == "flops":  # one step, counted, untimed
                from _peak import step_flops  # benchmarks/ is on sys.path

                send({"flops": step_flops(step)})
            elif command[0] == "quit":
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                peak = {"peak_rss_mb": rss}
                if cuda:
                    peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated(args.device) / 2**20
                send(peak)
                break
    except Exception:
        send({"error": traceback.format_exc()})
        sys.exit(1)


# -- the parent ---------------------------------------------------------------------------------


class Worker:
    """A worker process and its line protocol."""

    def __init__(
        self,
        side: str,
        python: str,
        args: argparse.Namespace,
        case: Case,
        precision: str = "float32",
        compile_mode: str | None = None,
    ) -> None:
        self.side = side
        kind = "official" if side == "official" else "ours"
        command = [python, os.path.abspath(__file__), "--worker", kind, "--case", case.name]
        command += ["--precision", precision, "--device", args.device]
        if compile_mode is not None:
            command += ["--compile-mode", compile_mode]
        command += ["--seed", str(args.seed), "--threads", str(args.threads)]
        command += ["--official-dir", os.path.abspath(args.official_dir)]
        env = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(args.threads)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the other benchmarks
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )

    def receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.side} worker exited ({self.process.wait()})")
        message = json.loads(line)
        if "error" in message:
            raise RuntimeError(f"the {self.side} worker failed:\n{message['error']}")
        return message

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def request(self, command: str) -> dict:
        self.send(command)
        return self.receive()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def official_commit(official_dir: Path) -> str | None:
    """The checkout's commit, or ``None`` where it is not a git work tree (an archive)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(official_dir), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    top, commit = out.stdout.split()
    return commit if Path(top).resolve() == official_dir.resolve() else None  # not a parent's


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cpu_capability() -> str:
    """The vector instruction set torch's own CPU kernels use here (e.g. ``"AVX512"``)."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def check_same_model(case: Case, official: dict, ours: dict) -> None:
    """Raise unless both workers built the same shapes (and GECO in both or neither)."""
    a, b = official["model"], ours["model"]
    same = all(a[k] == b[k] for k in ("K", "image", "z_dim")) and official["geco"] == ours["geco"]
    if not same or abs(a["log_scale"] - b["log_scale"]) > 1e-6:
        raise RuntimeError(f"{case.name}: the two models differ: official {a}, ours {b}")


def side_name(precision: str, compile_mode: str | None = None) -> str:
    """``"ours"`` for float32 convolutions, ``"ours_<precision>"`` for another precision, and
    ``"_compiled"`` (or ``"_compiled-<mode>"``) after either for the compiled stacks."""
    name = "ours" if precision == "float32" else f"ours_{precision}"
    if compile_mode is not None:
        name += "_compiled" if compile_mode == "default" else f"_compiled-{compile_mode}"
    return name


def summarize(times: dict[str, list[float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of each side, and each of our sides' ratio to the official."""
    medians = {side: statistics.median(t) for side, t in times.items()}
    ratios = {s: m / medians["official"] for s, m in medians.items() if s != "official"}
    return medians, ratios


def run_case(case: Case, args: argparse.Namespace, cpu: str, peak: dict) -> dict:
    workers = {"official": Worker("official", args.official_python, args, case)}
    for precision in args.precisions:
        for mode in [None, *args.compile]:
            side = side_name(precision, mode)
            workers[side] = Worker(side, sys.executable, args, case, precision, mode)
    # A variant of ours that fails (a compile mode this torch cannot run, say) is dropped with
    # its error and the others go on; without the official side there is nothing to compare.
    failed: dict[str, str] = {}

    def attempt(side: str, command: str | None) -> dict | None:
        try:
            w = workers[side]
            return w.receive() if command is None else w.request(command)
        except RuntimeError as error:
            if side == "official":
                raise
            failed[side] = str(error)
            print(f"  {case.name}: {side} dropped: {error}", file=sys.stderr)
            workers.pop(side).close()
            return None

    try:
        ready = {side: attempt(side, None) for side in list(workers)}
        ready = {side: r for side, r in ready.items() if r is not None}
        params = {side: r["params"] for side, r in ready.items()}
        for side in ready.keys() - {"official"}:
            if params[side] != params["official"]:
                print(f"  {case.name}: parameter counts differ {params}", file=sys.stderr)
            check_same_model(case, ready["official"], ready[side])
        flops = {}  # one untimed, counted step per side
        for side in list(workers):
            counted = attempt(side, "flops")
            if counted is not None:
                flops[side] = counted["flops"]
        # The untimed first steps, all sides at once: compiled variants compile here, side by
        # side on the CPU's cores, so their warm-up seconds bound their compile time from above.
        for side, w in workers.items():
            w.send(f"run {max(args.warmup, 1 if 'compiled' in side else 0)}")
        warmup_seconds = {}
        for side in list(workers):
            done = attempt(side, None)
            if done is not None:
                warmup_seconds[side] = round(done["seconds"], 2)
        times: dict[str, list[float]] = {side: [] for side in workers}
        for r in range(args.rounds):
            order = list(workers)
            for side in order if r % 2 == 0 else order[::-1]:
                done = attempt(side, f"run {args.steps_per_round}")
                if done is not None:
                    times[side].append(done["seconds"] / args.steps_per_round)
            times = {side: t for side, t in times.items() if side in workers}
            line = ", ".join(f"{side} {t[-1]:.4f} s" for side, t in times.items())
            print(f"  {case.name} round {r + 1}/{args.rounds}: {line}", file=sys.stderr)
        peaks = {side: attempt(side, "quit") for side in list(workers)}
        peaks = {side: p for side, p in peaks.items() if p is not None}
    finally:
        for w in workers.values():
            w.close()
    medians, ratios = summarize(times)
    return {
        "case": case.name,
        "mode": case.mode,
        "preset": case.preset,
        "official_config": case.official_config,
        "batch_size": case.batch_size,
        "refine_steps": case.refine_steps,
        "geco": ready["official"]["geco"],
        "device": args.device,
        "gpu": ready["official"]["gpu"],
        "rounds": args.rounds,
        "warmup_steps": args.warmup,
        "steps_per_round": args.steps_per_round,
        "s_per_step_median": medians,
        "ratio_ours_over_official": ratios.get("ours"),  # float32 convolutions
        "ratio_over_official": ratios,  # every variant timed
        "s_per_step_all": {side: [round(t, 5) for t in v] for side, v in times.items()},
        "warmup_seconds": warmup_seconds,  # run side by side; compiled: mostly compiling
        "failed": failed,
        "efficiency": efficiency({s: f for s, f in flops.items() if s in medians}, medians, peak),
        "peak_rss_mb": {side: p["peak_rss_mb"] for side, p in peaks.items()},
        "peak_gpu_mb": {side: p.get("peak_gpu_mb") for side, p in peaks.items()},
        "params": params,
        "model": {side: r["model"] for side, r in ready.items()},
        "threads": {side: r["threads"] for side, r in ready.items()},
        "torch": {side: r["torch"] for side, r in ready.items()},
        "cpu": cpu,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-dir", required=True, help="the official checkout")
    parser.add_argument(
        "--official-python", help="the official venv's python (default <official-dir>-venv)"
    )
    parser.add_argument(
        "--cases", nargs="+", default=list(CASES), choices=list(CASES), metavar="CASE"
    )
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per side")
    parser.add_argument("--steps-per-round", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1, help="the official configs' seed")
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["float32"],
        choices=("float32", "bfloat16", "auto"),
        help="this library's convolution precision(s), one worker each (default float32)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N")
    parser.add_argument(
        "--compile",
        nargs="+",
        default=[],
        choices=("default", "reduce-overhead"),
        metavar="MODE",
        help="add, per precision, a variant of ours with torch.compile'd convolution stacks in "
        "each torch.compile mode named (reduce-overhead: CUDA graphs on a GPU)",
    )
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--compile-mode", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("ours", "official", "peak"), help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if len(set(args.precisions)) < len(args.precisions):
        parser.error("--precisions: name each precision once")
    if args.rounds < 1 or args.steps_per_round < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--rounds, --steps-per-round and --threads must be >= 1, --warmup >= 0")
    if args.official_python is None:
        official_dir = os.path.abspath(args.official_dir).rstrip("/")
        args.official_python = os.path.join(official_dir + "-venv", "bin", "python")
    return args


def main() -> None:
    args = parse_args()
    if args.worker == "peak":
        peak_worker(args)
        return
    if args.worker:
        worker(args)
        return
    from pyro_emorl.devices import check_device

    try:
        check_device(args.device)  # before starting any worker
    except ValueError as error:
        sys.exit(str(error))
    official_dir = Path(args.official_dir)
    if not (official_dir / "lib" / "model.py").is_file():
        sys.exit(f"{official_dir} is not an EfficientMORL checkout (no lib/model.py)")
    if not Path(args.official_python).is_file():
        sys.exit(f"no official python at {args.official_python}; see this script's docstring")
    commit = official_commit(official_dir)
    if commit is not None and not commit.startswith(OFFICIAL_COMMIT):
        print(f"the official checkout is at {commit}, not {OFFICIAL_COMMIT}", file=sys.stderr)
    cpu = cpu_model()
    peak = measure_peak(args)  # the efficiencies use this one; it is measured again after
    print(f"matrix-multiply peak: {json.dumps(peak)}", file=sys.stderr)
    results = []
    for name in args.cases:
        print(f"{name} ...", file=sys.stderr)
        results.append(run_case(CASES[name], args, cpu, peak))
        # each case's result as soon as it is measured, so an interrupted run keeps its cases
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(
        json.dumps(
            {
                "benchmark": "vs_official",
                "official_dir": str(official_dir.resolve()),
                "official_commit": commit,
                "cpu": cpu,
                "threads": args.threads,
                # what the kernels may use (ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA can
                # hold a CPU to AVX2 kernels, as on a CPU without AVX-512)
                "cpu_capability": cpu_capability(),
                "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
                "matmul_peak": {"before": peak, "after": measure_peak(args)},
                "cases": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
