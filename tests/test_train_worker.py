"""The tiny training program that the subprocess tests run (resume after SIGKILL, torchrun DDP),
and the tiny setup every training test shares. Holds no tests itself.

    python tests/test_train_worker.py OUT_DIR --steps 40 [--resume] [--dump STATE.pt]
    python tests/test_train_worker.py OUT_DIR --kill-at-random-moments 6 --moments-seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import tempfile
import time
import traceback
from pathlib import Path
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


def kill_at_random_moments(args: argparse.Namespace) -> None:
    """Train in forked children (no second start-up of Python and torch) and SIGKILL each at a
    random moment once it has made progress, ``args.kill_at_random_moments`` times; check after
    each kill that every checkpoint file left is complete; then resume to the end here.

    Prints ``{"kills": N}``: how many kills landed before a child finished on its own.
    """
    moments = random.Random(args.moments_seed)
    metrics = Path(args.out_dir) / "metrics.jsonl"
    with tempfile.TemporaryDirectory() as scratch:  # the first fit of a process is slow:
        warm_up = argparse.Namespace(**{**vars(args), "out_dir": scratch, "steps": 1})
        train_once(warm_up, resume=False)  # pay it once, here, for every child
    kills = 0
    for attempt in range(args.kill_at_random_moments):
        logged = len(train.read_metrics(metrics)) if metrics.is_file() else 0
        pid = os.fork()
        if pid == 0:  # the child: one training run, killed or finished
            try:
                code = train_once(args, resume=attempt > 0)
            except BaseException:
                traceback.print_exc()
                code = 1
            os._exit(code)
        # Wait until the child logs past what the last one left, then kill it a moment later.
        status = None
        deadline = time.monotonic() + 300  # generous: 2 shared cores can be starved
        while not (metrics.is_file() and len(train.read_metrics(metrics)) > logged):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the run made no progress")
            time.sleep(0.01)
        else:
            # A random phase of one checkpoint cycle (a step, a log write, a checkpoint write, a
            # prune) at the pace the child logged, so that the moments are alike on a fast
            # machine and on a starved one.
            pace = train.read_metrics(metrics)[-1]["steps_per_s"]
            time.sleep(moments.uniform(0.0, args.checkpoint_every / pace))
            os.kill(pid, signal.SIGKILL)
            status = os.waitpid(pid, 0)[1]
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            break  # it reached the end first
        kills += 1
        for path in pe.io.list_checkpoints(Path(args.out_dir) / "checkpoints"):
            assert pe.io.load_checkpoint(path)["step"] == int(path.stem.split("-")[1]), path
    print(json.dumps({"kills": kills}), flush=True)
    raise SystemExit(train_once(args, resume=True))


def train_once(args: argparse.Namespace, resume: bool) -> int:
    """One run of the tiny training; returns the exit status (130: stopped by a signal)."""
    options = train.RunOptions(
        out_dir=args.out_dir,
        device="cpu",
        resume=resume,
        log_every=2,
        checkpoint_every=args.checkpoint_every,
        keep_checkpoints=args.keep_checkpoints,
        figure_every=0,
        progress=False,
        tensorboard=False,
    )
    result = train.fit(tiny_config(steps=args.steps), tiny_dataset(), options)
    if args.dump:
        torch.save(state_of(result), f"{args.dump}.rank{os.environ.get('RANK', '0')}.pt")
    return 130 if result.interrupted else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--keep-checkpoints", type=int, default=100)
    parser.add_argument("--dump", help="save this rank's final state to DUMP.rankN.pt")
    parser.add_argument(
        "--kill-at-random-moments", type=int, default=0, metavar="N", help="see the function"
    )
    parser.add_argument("--moments-seed", type=int, default=0)
    args = parser.parse_args()
    # One thread: identical arithmetic in every process, and no oversubscription of 2 cores.
    torch.set_num_threads(1)
    if args.kill_at_random_moments:
        kill_at_random_moments(args)
    raise SystemExit(train_once(args, resume=args.resume))


if __name__ == "__main__":
    main()
