"""How fast a recipe learns: held-out FG-ARI against training steps and seconds, as JSON.

Trains one named recipe (a preset) on generated Tetrominoes or Multi-dSprites for a step or
wall-clock budget and scores the model along the way on 320 held-out generated images and, for
Tetrominoes, on the 10 real DeepMind records that travel with the tests. One run per seed; the
thread count is fixed; training seconds exclude the evaluations.

    python benchmarks/learning.py --recipe tetrominoes_fast --seed 0 --minutes 60
    python benchmarks/learning.py --recipe tetrominoes --seed 0 --minutes 60     # the paper's
    python benchmarks/learning.py --recipe multi_dsprites --minutes 60 --eval-every 200
    # one factor changed (the ablation): any configuration field, as in `emorl train --set`
    python benchmarks/learning.py --set likelihood=mixture --minutes 15 --eval-every 250
    # a component of your own, registered by a file (as `emorl train --import`)
    python benchmarks/learning.py --import my_decoder.py --set decoder=my_decoder --steps 1000
    # the paper's recipe on a GPU
    python benchmarks/learning.py --recipe tetrominoes --device cuda --minutes 60
    # fine-tuning the shipped model with another likelihood
    python benchmarks/learning.py --init-from tetrominoes --set likelihood=mixture --steps 500
    # three starts trained to step 1,000, the best continued (train.fit_best_start)
    python benchmarks/learning.py --starts 3 --select-at 1000 --minutes 60
    # ten seeds, two at a time on one thread each: the per-seed table (steps and minutes to
    # held-out FG-ARI 0.5, 0.8 and 0.95) in one JSON
    python benchmarks/learning.py --seeds 10 --jobs 2 --threads 1 --steps 1500 \
        --eval-every 250 --table runs/learning/fast-10-seeds.json

The run directory (``--out``, default ``runs/learning/<recipe>-seed<seed>``) keeps checkpoints,
so an interrupted benchmark continues with ``--resume``. With ``--starts N`` the starts train in
its ``start-<seed>/`` folders; the curve is the continued start's, its ``train_seconds`` counting
the training of every start before each point, and each start's own curve to the selection step
is in ``starts``.

With ``--seeds N`` the seeds ``--seed`` .. ``--seed + N - 1`` train in separate processes
(``--jobs`` at a time, each with ``--threads`` threads, in the folder named as the table without
its suffix: a run directory and a log per seed), and ``--table`` receives every seed's curve and
the per-seed table; ``--resume`` continues every seed's run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.cli import add_import_argument
from pyro_emorl.data import HDF5Dataset, convert, default_dataset
from pyro_emorl.data.atomic import atomic_path
from pyro_emorl.devices import check_device
from pyro_emorl.train.cli import add_override_arguments, resolve_config
from pyro_emorl.train.starts import start_dir

REAL_RECORDS = (
    Path(__file__).resolve().parents[1] / "tests/fixtures/real/tetrominoes_mini.tfrecords"
)
#: The held-out FG-ARI levels of the per-seed table.
LEVELS = (0.5, 0.8, 0.95)
#: The generator behind each recipe's data.
GENERATED = {"tetrominoes": "tetrominoes", "multi_dsprites": "multi_dsprites"}


def cpu_name() -> str:
    """The CPU model, as /proc/cpuinfo names it (or the platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def real_records(run_dir: Path) -> HDF5Dataset:
    """The 10 real Tetrominoes records, converted into the HDF5 layout beside ``run_dir`` (a
    run's folder holds only what the run writes)."""
    path = run_dir.parent / f"{run_dir.name}.real10.h5"
    if not path.is_file():
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        convert("tetrominoes", REAL_RECORDS, path, num_train=0, num_test=10, progress=False)
    return HDF5Dataset(path, split="test", masks=True)


def _rounded(value: float | None) -> float | None:
    """Four decimals; ``None`` (a metric undefined on every image) stays ``None``."""
    return None if value is None else round(value, 4)


def summarise(record: dict, sets: list[str]) -> dict:
    out = {"step": record["step"], "train_seconds": round(record["train_seconds"], 1)}
    for name in sets:
        out[name] = {
            "fg_ari": [_rounded(record[f"{name}/fg_ari"]), _rounded(record[f"{name}/fg_ari_std"])],
            # all pixels, the background included: what the background bar needs
            "ari": _rounded(record[f"{name}/ari"]),
            "msc": _rounded(record[f"{name}/msc"]),
            "mse": round(record[f"{name}/mse"], 6),
            "kl": round(record[f"{name}/kl"], 2),
        }
    return out


def evaluations(run_dir: Path) -> list[dict]:
    """The evaluation records of a run's ``metrics.jsonl``."""
    return [r for r in train.read_metrics(run_dir / "metrics.jsonl") if "train_seconds" in r]


def starts_curves(
    out: Path, done: train.StartsResult, select_at: int, sets: list[str]
) -> tuple[list[dict], dict]:
    """The continued start's curve, each point's ``train_seconds`` counting every start trained
    before it (in order, the others to ``select_at`` before the continuation), and a summary of
    the starts with each one's own curve to the selection step."""
    seconds = {
        int(s): v for s, v in json.loads((out / "starts.json").read_text())["train_seconds"].items()
    }
    before_best = sum(seconds[s] for s in done.seeds[: done.seeds.index(done.best)])
    others = sum(v for s, v in seconds.items() if s != done.best)
    curve = []
    for record in evaluations(start_dir(out, done.best)):
        offset = before_best if record["step"] <= select_at else others
        curve.append(summarise({**record, "train_seconds": record["train_seconds"] + offset}, sets))
    summary = {
        "seeds": done.seeds,
        "select_at": select_at,
        "scores": {str(s): round(v, 2) for s, v in done.scores.items()},
        "best": done.best,
        "train_seconds": {str(s): round(v, 1) for s, v in seconds.items()},
        "curves": {
            str(s): [
                summarise(r, sets) for r in evaluations(start_dir(out, s)) if r["step"] <= select_at
            ]
            for s in done.seeds
        },
    }
    return curve, summary


def first_reaching(curve: list[dict], level: float) -> dict | None:
    """The first evaluation whose generated-set FG-ARI is at least ``level`` (its step and
    training minutes), or ``None`` when no evaluation reaches it."""
    for point in curve:
        score = point["generated"]["fg_ari"][0]
        if score is not None and score >= level:
            return {"step": point["step"], "minutes": round(point["train_seconds"] / 60, 1)}
    return None


def seed_table(runs: dict[int, dict]) -> dict:
    """The per-seed table: for each seed the first step (and minutes) at which held-out FG-ARI
    reaches each of ``LEVELS`` and its last score; and for each level how many seeds reach it."""
    rows = {}
    for seed, run in sorted(runs.items()):
        last = run["curve"][-1]
        rows[str(seed)] = {
            **{str(level): first_reaching(run["curve"], level) for level in LEVELS},
            "last": {"step": last["step"], "fg_ari": last["generated"]["fg_ari"][0]},
        }
    reached = {
        str(level): sum(row[str(level)] is not None for row in rows.values()) for level in LEVELS
    }
    return {"seeds": rows, "reached": reached, "of": len(rows)}


def run_seeds(args: argparse.Namespace) -> None:
    """Train ``args.seeds`` seeds in separate processes and write the per-seed table."""
    seeds = range(args.seed, args.seed + args.seeds)
    table_path = Path(args.table)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    runs_dir = table_path.with_suffix("")  # each seed's run directory and log
    runs_dir.mkdir(exist_ok=True)
    child_args = without_options(sys.argv[1:], {"--seeds", "--jobs", "--table", "--seed"})
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}

    def one(seed: int) -> dict:
        out = runs_dir / f"seed{seed}"
        command = [sys.executable, __file__, *child_args, "--seed", str(seed), "--out", str(out)]
        with open(runs_dir / f"seed{seed}.log", "a") as log:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=log, text=True, env=environment
            )
        if done.returncode != 0:
            sys.exit(f"learning.py: seed {seed} failed (exit {done.returncode}); see {log.name}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(args.jobs) as pool:
        runs = dict(zip(seeds, pool.map(one, seeds)))
    first = runs[args.seed]
    result = {
        key: first[key]
        for key in ("recipe", "overrides", "cpu", "device", "threads", "precision", "torch")
    }
    result.update(
        jobs=args.jobs,
        command="python benchmarks/learning.py " + " ".join(sys.argv[1:]),
        table=seed_table(runs),
        curves={str(seed): run["curve"] for seed, run in runs.items()},
    )
    with atomic_path(table_path) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["table"], indent=1))


def without_options(argv: list[str], names: set[str]) -> list[str]:
    """``argv`` without the options in ``names`` and their values."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif arg.split("=", 1)[0] not in names:
            out.append(arg)
    return out


#: ``--import``'s help.
IMPORT_HELP = "a module or Python file that registers components or presets (repeatable)"


def main() -> None:
    # The user's registrations first, so that their presets are among --recipe's choices.
    imports = argparse.ArgumentParser(add_help=False)
    add_import_argument(imports, IMPORT_HELP)
    try:
        for spec in imports.parse_known_args()[0].imports:
            pe.import_components(spec)
    except ValueError as error:
        imports.error(str(error))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_import_argument(parser, IMPORT_HELP)
    parser.add_argument("--recipe", default="tetrominoes_fast", choices=pe.presets.names())
    parser.add_argument("--seed", type=int, default=0, help="model seed (the data are fixed)")
    parser.add_argument("--minutes", type=float, help="training wall-clock budget")
    parser.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between evaluations")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--num-train", type=int, default=60_000, help="generated training images")
    add_override_arguments(parser)  # --set KEY=VALUE and --precision, as `emorl train`
    parser.add_argument(
        "--out",
        help="run directory (default runs/learning/<recipe>-seed<seed>, with a hash of the "
        "--set overrides and a non-default --precision after the recipe's name)",
    )
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start from these weights (a checkpoint or a shipped model's name), as `emorl train`",
    )
    parser.add_argument(
        "--starts", type=int, default=1, help="initialisations tried; the best is continued"
    )
    parser.add_argument(
        "--select-at", type=int, default=1000, help="step at which --starts are compared"
    )
    parser.add_argument("--seeds", type=int, help="train this many seeds, from --seed on")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once (--seeds)")
    parser.add_argument("--table", help="where --seeds writes its JSON (required with it)")
    args = parser.parse_args()
    if args.starts < 1 or args.select_at < 1:
        parser.error("--starts and --select-at must be >= 1")
    if args.seeds is not None:
        if args.seeds < 1 or args.jobs < 1:
            parser.error("--seeds and --jobs must be >= 1")
        if args.table is None or args.out is not None:
            parser.error("--seeds needs --table FILE.json and no --out (each seed has its own)")
        if Path(args.table).exists() and not args.resume:
            parser.error(
                f"{args.table} exists; give another --table, or --resume to continue its seeds "
                "(the table is then rewritten)"
            )
        if args.jobs * args.threads > (os.cpu_count() or 1):
            print(
                f"learning.py: {args.jobs} jobs x {args.threads} threads exceed the "
                f"{os.cpu_count()} CPUs; the runs will slow each other",
                file=sys.stderr,
            )
        run_seeds(args)
        return

    try:
        config = resolve_config(args.recipe, args.overrides, steps=args.steps)
        device = check_device(args.device)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    base = pe.presets.data_of(args.recipe)
    if base not in GENERATED:
        parser.error(
            f"--recipe {args.recipe}: its images are not generated ({base}); "
            f"learning.py trains on {' or '.join(GENERATED)}"
        )
    name = args.recipe
    if args.overrides:  # runs with different overrides never share a directory
        name += "+" + hashlib.sha256("\n".join(args.overrides).encode()).hexdigest()[:8]
    if args.precision != "float32":  # nor runs with different convolution precisions
        name += "+" + args.precision
    if args.init_from is not None:  # nor runs from given weights and fresh ones
        name += "+from-" + Path(args.init_from).stem
    if args.starts > 1:  # nor runs with several starts and runs with one
        name += f"+starts{args.starts}-at{args.select_at}"
    out = Path(args.out or f"runs/learning/{name}-seed{args.seed}")
    data = default_dataset(GENERATED[base], num_train=args.num_train, progress=False)
    eval_sets = {"generated": HDF5Dataset(data, split="test", masks=True)}
    if base == "tetrominoes":
        eval_sets["real"] = real_records(out)
    options = train.RunOptions(
        out_dir=out,
        seed=args.seed,
        resume=args.resume,
        device=str(device),
        log_every=100,
        checkpoint_every=args.eval_every,
        figure_every=0,
        progress=False,
        eval_every=args.eval_every,
        time_budget_s=None if args.minutes is None else 60 * args.minutes,
        precision=args.precision,
        init_from=args.init_from,
    )
    dataset = HDF5Dataset(data, split="train")
    sets = list(eval_sets)
    extra = {}
    if args.starts == 1:
        train.fit(config, dataset, options, eval_data=eval_sets)
        curve = [summarise(r, sets) for r in evaluations(out)]
    else:
        try:
            done = train.fit_best_start(
                config,
                dataset,
                options,
                starts=args.starts,
                select_at=args.select_at,
                eval_data=eval_sets,
            )
        except (ValueError, FileExistsError) as error:
            parser.error(str(error))
        if done.best is None:
            sys.exit(f"learning.py: stopped during the starts; continue with --resume --out {out}")
        curve, extra["starts"] = starts_curves(out, done, args.select_at, sets)
    print(
        json.dumps(
            {
                "recipe": args.recipe,
                "overrides": args.overrides,
                "seed": args.seed,
                "cpu": cpu_name(),
                "device": str(device),
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                "threads": args.threads,
                "precision": args.precision,
                "native_bf16": pe.nn.cpu_has_native_bf16(),
                "torch": torch.__version__,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "budget_minutes": args.minutes,
                "init_from": args.init_from,
                "command": "python benchmarks/learning.py " + " ".join(sys.argv[1:]),
                "curve": curve,
                **extra,
            }
        )
    )


if __name__ == "__main__":
    main()
