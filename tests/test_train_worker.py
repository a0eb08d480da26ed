"""The tiny training program that the subprocess tests run (resume after SIGKILL, torchrun DDP),
and the tiny setup every training test shares. Holds no tests itself.

    python tests/test_train_worker.py OUT_DIR --steps 40 [--resume] [--dump STATE.pt]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch
from torch.utils.data import TensorDataset

import pyro_emorl as pe
from pyro_emorl import train

IMAGE_SHAPE = (3, 12, 12)


def tiny_config(steps: int = 8, batch_size: int = 4, **overrides: Any) -> pe.EMORLConfig:
    """3x12x12 images, K=3, D=8, L=2, I=2, GECO from the 4th step, a 2-step LR warm-up."""
    fields: dict[str, Any] = dict(
        image_shape=IMAGE_SHAPE,
        num_slots=3,
        z_dim=8,
        num_layers=2,
        refinement_steps=2,
        decoder="small",
        geco=pe.GECOConfig(target_per_element=-1.0, warm_start=3),
        training=pe.TrainingConfig(
            steps=steps, batch_size=batch_size, warmup_steps=2, curriculum=((-1, 2), (6, 1))
        ),
    )
    fields.update(overrides)
    return pe.EMORLConfig(**fields)


def tiny_dataset(num_images: int = 24, seed: int = 0) -> TensorDataset:
    """Random images in [0, 1] (a dataset of 1-tuples, like ``TensorDataset``)."""
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(num_images, *IMAGE_SHAPE, generator=generator))


def state_of(result: train.TrainResult) -> dict[str, Any]:
    """The trained state of a run, for comparisons."""
    return {
        "model": result.model.state_dict(),
        "guide": result.guide.state_dict(),
        "geco": None if result.geco is None else result.geco.state_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--dump", help="save this rank's final state to DUMP.rankN.pt")
    args = parser.parse_args()
    # One thread: identical arithmetic in every process, and no oversubscription of 2 cores.
    torch.set_num_threads(1)
    options = train.RunOptions(
        out_dir=args.out_dir,
        device="cpu",
        resume=args.resume,
        log_every=2,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=100,
        figure_every=0,
        progress=False,
        tensorboard=False,
    )
    result = train.fit(tiny_config(steps=args.steps), tiny_dataset(), options)
    if args.dump:
        torch.save(state_of(result), f"{args.dump}.rank{os.environ.get('RANK', '0')}.pt")
    raise SystemExit(130 if result.interrupted else 0)


if __name__ == "__main__":
    main()
