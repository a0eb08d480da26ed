"""Two-process gloo DDP on CPU under torchrun: the ranks stay identical."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

import pyro_emorl as pe
from pyro_emorl import train

WORKER = Path(__file__).with_name("test_train_worker.py")
STEPS = 8


def test_two_gloo_ranks_stay_identical(tmp_path) -> None:
    dump = tmp_path / "state"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free port of its own, as the tutorial launches it
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tmp_path / "run"),
        "--steps",
        str(STEPS),
        "--dump",
        str(dump),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    subprocess.run(command, check=True, env=env, timeout=300, capture_output=True)

    ranks = [torch.load(f"{dump}.rank{r}.pt", weights_only=True) for r in range(2)]
    for part in ("model", "guide", "geco"):
        for name, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][name]), f"{part}.{name} differs across ranks"
    geco = ranks[0]["geco"]
    assert int(geco["num_updates"]) == STEPS and float(geco["beta"]) > 0.55  # GECO ran

    # Rank 0 alone logged and checkpointed; the checkpoint holds both ranks' RNG states.
    checkpoint = pe.io.load_checkpoint(tmp_path / "run" / "checkpoints" / f"step-{STEPS:08d}.pt")
    # The global batch of 4 is split 2 + 2: 24 images make 6 steps per epoch, as in one process.
    assert checkpoint["data"]["world_size"] == 2 and checkpoint["data"]["batches_per_epoch"] == 6
    assert len(checkpoint["rng"]) == 2
    assert not torch.equal(checkpoint["rng"][0]["torch"], checkpoint["rng"][1]["torch"])
    records = train.read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [2, 4, 6, 8]
