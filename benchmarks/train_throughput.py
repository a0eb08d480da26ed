"""Training throughput of the full loop (steps/s and images/s) per preset, printed as JSON.

Each preset runs in its own subprocess: ``pyro_emorl.train.fit`` for ``--warmup`` steps, then a
resumed ``fit`` for ``--steps`` more, timed by the loop itself (one host synchronisation at the end,
so GPU timings are not diluted by per-step syncs). Everything a training step does is included:
reading the batch, the refinement ELBO (GECO where the preset uses it), backward, clipping, Adam,
the GECO update and the LR schedule; checkpoints and figures are not.

Tetrominoes and Multi-dSprites read generated HDF5 files; the CLEVR presets read random images
from memory (CLEVR cannot be generated). The refinement steps follow the preset's curriculum at
step 0 (I = 3).

    python benchmarks/train_throughput.py                       # every preset, batch 8, CPU
    python benchmarks/train_throughput.py --preset tetrominoes --batch-size 32 --device cuda
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from _presets import run_per_preset  # noqa: E402  (benchmarks/ is on sys.path)
from torch.utils.data import TensorDataset  # noqa: E402

import pyro_emorl as pe  # noqa: E402
from pyro_emorl import train  # noqa: E402
from pyro_emorl.data import generate  # noqa: E402

GENERATED = ("tetrominoes", "multi_dsprites")


def dataset(preset: str, config: pe.EMORLConfig, num_images: int, directory: Path):
    if preset in GENERATED:
        path = generate(preset, directory / "data.h5", num_images, 0, progress=False)
        return train.training_dataset(preset, config, path)
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(num_images, *config.image_shape, generator=generator))


def worker(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    preset = args.preset[0]
    total = args.warmup + args.steps
    config = pe.presets.get(preset).replace(training={"batch_size": args.batch_size})
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(preset, config, args.batch_size * total, Path(tmp))
        options = train.RunOptions(
            out_dir=Path(tmp) / "run",
            device=args.device,
            log_every=10**9,  # only the final record: no per-step synchronisation
            checkpoint_every=10**9,
            figure_every=0,
            progress=False,
            tensorboard=False,
        )
        train.fit(config.replace(training={"steps": args.warmup}), data, options)
        timed = config.replace(training={"steps": total})
        result = train.fit(timed, data, dataclasses.replace(options, resume=True))
        record = train.read_metrics(result.out_dir / "metrics.jsonl")[-1]
    return {
        "preset": preset,
        "device": str(next(result.model.parameters()).device),
        "batch_size": args.batch_size,
        "refinement_steps": record["refinement_steps"],
        "geco": config.geco is not None,
        "threads": args.threads,
        "timed_steps": args.steps,
        "steps_per_s": record["steps_per_s"],
        "images_per_s": record["images_per_s"],
        "s_per_step": 1 / record["steps_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    presets = pe.presets.names()
    parser.add_argument("--preset", nargs="+", default=presets, choices=presets)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="timed steps")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    flags = []
    for flag in ("batch_size", "steps", "warmup", "threads", "device"):
        flags += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    results = run_per_preset(__file__, args.preset, flags)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
