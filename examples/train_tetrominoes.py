"""Train EfficientMORL on Tetrominoes.

    python examples/train_tetrominoes.py --quick        # a CPU demo: about 7 minutes on 2 cores
    python examples/train_tetrominoes.py                # the paper's recipe (use a GPU)
    python examples/train_tetrominoes.py --data tetrominoes.h5
    torchrun --nproc_per_node 2 examples/train_tetrominoes.py   # 2 processes share the batch of 32

Without --data, 60,000 scenes are generated once and cached (~/.cache/pyro_emorl, or
$PYRO_EMORL_CACHE). The run directory gets checkpoints/, figures/ (decompositions),
metrics.jsonl and config.json. Ctrl-C writes a checkpoint; --resume continues from it exactly.
"""

import argparse
import math

import torch

import pyro_emorl as pe
from pyro_emorl import train


def main() -> None:
    parser = argparse.ArgumentParser(description="Train EfficientMORL on Tetrominoes.")
    parser.add_argument("--data", help="HDF5 file (default: generate the dataset)")
    parser.add_argument("--steps", type=int, help="training steps (paper: 200,000)")
    parser.add_argument("--batch-size", type=int, help="global batch size (paper: 32)")
    parser.add_argument("--out", default="runs/tetrominoes", help="run directory")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--quick", action="store_true", help="a few-minute demo on a CPU")
    args = parser.parse_args()

    # The paper's recipe: K = 4 slots, z of size 32, 3 stochastic layers, the small decoder,
    # Gaussian likelihood (sigma 0.3); GECO with the reconstruction target -1.224 per element
    # after a 1,000-step warm start; Adam at 4e-4 with a 10K-step warm-up, halved every 100K steps;
    # gradients clipped at 5; 3 refinement steps throughout; 200K steps of 32 images.
    config = pe.presets.tetrominoes()
    run = {"out_dir": args.out, "device": args.device, "resume": args.resume}
    num_train = None  # the paper's 60,000 images
    model = guide = None  # fit() builds them from the config
    if args.quick:
        # A CPU demo in which the loss falls and coarse masks begin to form (objects take longer):
        # a sharper likelihood (sigma 0.1, not 0.3), no GECO, one refinement step, batches of 8,
        # a short warm-up, and a unit-gain initialisation (with the official gain of 0.02 the
        # decoder ignores the latents for the first thousands of steps).
        config = config.replace(
            log_scale=math.log(0.1),
            geco=None,
            refinement_steps=1,
            training={"steps": 2400, "batch_size": 8, "warmup_steps": 20, "curriculum": ((-1, 1),)},
        )
        torch.manual_seed(0)
        model, guide = pe.build(config)
        for module in (model, guide):
            pe.nn.official_init_(module, gain=1.0)
        run.update(log_every=20, checkpoint_every=200, figure_every=200)
        num_train = 5_000
    given = {"steps": args.steps, "batch_size": args.batch_size}
    config = config.replace(training={k: v for k, v in given.items() if v is not None})

    dataset = train.training_dataset("tetrominoes", config, args.data, num_train=num_train)
    result = train.fit(config, dataset, train.RunOptions(**run), model=model, guide=guide)
    print(f"{result.step} steps done; last checkpoint: {result.checkpoint}")
    print(f"metrics: {args.out}/metrics.jsonl, decompositions: {args.out}/figures/")


if __name__ == "__main__":
    main()
