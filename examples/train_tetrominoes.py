"""Train EfficientMORL on Tetrominoes.

    python examples/train_tetrominoes.py --quick        # the fast recipe for 12 minutes on a CPU
    python examples/train_tetrominoes.py                # the paper's recipe (use a GPU)
    python examples/train_tetrominoes.py --data tetrominoes.h5
    # 2 processes share the batch of 32:
    torchrun --standalone --nproc_per_node 2 examples/train_tetrominoes.py

Without --data, 60,000 scenes are generated once and cached (~/.cache/pyro_emorl, or
$PYRO_EMORL_CACHE). The run directory gets checkpoints/, figures/ (decompositions),
metrics.jsonl and config.json. Ctrl-C writes a checkpoint; --resume continues from it exactly.
"""

import argparse

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.data import HDF5Dataset


def main() -> None:
    parser = argparse.ArgumentParser(description="Train EfficientMORL on Tetrominoes.")
    parser.add_argument("--data", help="HDF5 file (default: generate the dataset)")
    parser.add_argument("--steps", type=int, help="training steps (paper: 200,000)")
    parser.add_argument("--batch-size", type=int, help="global batch size (paper: 32)")
    parser.add_argument("--out", default="runs/tetrominoes", help="run directory")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--quick", action="store_true", help="a 12-minute demo on a CPU")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time of --quick")
    args = parser.parse_args()

    # The paper's recipe: K = 4 slots, z of size 32, 3 stochastic layers, the small decoder,
    # Gaussian likelihood (sigma 0.3); GECO with the reconstruction target -1.224 per element
    # after a 1,000-step warm start; Adam at 4e-4 with a 10K-step warm-up, halved every 100K steps;
    # gradients clipped at 5; 3 refinement steps throughout; 200K steps of 32 images.
    config = pe.presets.tetrominoes()
    run = {"out_dir": args.out, "device": args.device, "resume": args.resume}
    if args.quick:
        # A CPU demo of the fast recipe (presets.tetrominoes_fast: the paper's model, a recipe
        # that learns in hours rather than days; docs/learning.md lists every departure), with
        # bfloat16 convolutions where the CPU has them natively. Whether a start's slots take
        # the objects early varies from one initialisation to the next, so two starts train
        # 1,000 steps each and the one that explains its training images better (lower
        # negative ELBO; no labels) goes on, to 4,000 steps or 12 minutes of training in all,
        # scored on the 320 held-out generated images as it goes.
        config = pe.presets.tetrominoes_fast(training={"steps": 4000})
        run.update(
            precision="auto",
            log_every=50,
            checkpoint_every=500,
            figure_every=500,
            eval_every=500,
            time_budget_s=60 * args.minutes,
        )
    given = {"steps": args.steps, "batch_size": args.batch_size}
    config = config.replace(training={k: v for k, v in given.items() if v is not None})

    dataset = train.training_dataset("tetrominoes", config, args.data)
    # Scored while training: the test split of the same file (320 images never trained on).
    held_out = HDF5Dataset(dataset.path, split="test", masks=True)
    options = train.RunOptions(**run)
    if args.quick:
        select_at = max(1, min(1000, config.training.steps // 4))
        done = train.fit_best_start(
            config, dataset, options, starts=2, select_at=select_at, eval_data=held_out
        )
        result = done.result
        scores = ", ".join(f"start {s}: {v:.0f} nats" for s, v in done.scores.items())
        print(f"negative ELBO per training image at step {select_at}: {scores}")
        if done.best is not None:
            print(f"continued start {done.best}")
    else:
        result = train.fit(config, dataset, options, eval_data=held_out)
    print(f"{result.step} steps done; last checkpoint: {result.checkpoint}")
    print(f"metrics: {result.out_dir}/metrics.jsonl, decompositions: {result.out_dir}/figures/")
    metrics = result.out_dir / "metrics.jsonl"
    scores = [r for r in train.read_metrics(metrics) if "test/fg_ari" in r]
    if scores:
        print(f"held-out FG-ARI at step {scores[-1]['step']}: {scores[-1]['test/fg_ari']:.3f}")


if __name__ == "__main__":
    main()
