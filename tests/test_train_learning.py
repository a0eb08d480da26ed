"""Training learns: the fast Tetrominoes recipe, run as the README's quick demo runs it (two starts
of 1,000 steps, the better one continued, bfloat16 convolutions where the CPU has them), passes
a held-out FG-ARI of 0.5 within its first 1,500 steps.

Whether one initialisation separates its objects that early depends on the arithmetic, so on the
CPU; on two threads on a Zen 4 only 1 of 21 initialisations measured in docs/learning.md did
(start 1, the one this test kept there); on a 2-core Intel Xeon with AMX 3 of the same first 12
did (starts 0, 1 and 6) and the test passed too. On a machine where both starts are slow this
test fails, and that is the demo's failure too.

On a Zen 4 EPYC (2 threads, bfloat16) the starts scored 2,812 and 858 nats, start 1 was
continued, and its held-out FG-ARI was 0.041, 0.313, 0.817 and 0.802 at steps 0, 500, 1,000 and
1,500 (8 min 10 s with the data).
"""

from __future__ import annotations

import json

import pytest

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.data import HDF5Dataset, generate
from tests.tiny import num_threads

SELECT_AT = 1000
STEPS = 1500


@pytest.fixture(autouse=True)
def _two_threads():
    """The same arithmetic, hence the same curve, on any machine of one kind."""
    with num_threads(2):
        yield


@pytest.mark.slow
def test_fast_recipe_passes_fg_ari_one_half_within_its_first_steps(tmp_path) -> None:
    path = generate("tetrominoes", tmp_path / "tetrominoes.h5", 60_000, 64, progress=False)
    config = pe.presets.tetrominoes_fast(training={"steps": STEPS})
    options = train.RunOptions(
        out_dir=tmp_path / "run",
        device="cpu",
        precision="auto",
        log_every=100,
        checkpoint_every=500,
        figure_every=0,
        progress=False,
        tensorboard=False,
        eval_every=500,
    )
    held_out = HDF5Dataset(path, split="test", masks=True)
    done = train.fit_best_start(
        config,
        HDF5Dataset(path, split="train"),
        options,
        starts=2,
        select_at=SELECT_AT,
        eval_data=held_out,
    )
    assert done.best is not None and done.result.step == STEPS
    records = train.read_metrics(done.result.out_dir / "metrics.jsonl")
    curve = [(r["step"], round(r["test/fg_ari"], 3)) for r in records if "test/fg_ari" in r]
    print("scores:", json.dumps(done.scores), "continued:", done.best)
    print("held-out FG-ARI vs step:", json.dumps(curve))
    assert [step for step, _ in curve] == [0, 500, 1000, 1500]
    # At initialisation the slots split the canvas by chance (FG-ARI near 0).
    assert curve[0][1] < 0.2, curve
    # Early FG-ARI moves up and down as slots trade objects: judge the last two points.
    assert (curve[2][1] + curve[3][1]) / 2 > 0.5, curve
