"""fit_best_start(): several starts, scored without labels, the best one continued exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.train.starts import fit_best_start, negative_elbo, start_dir, start_seeds
from tests.test_train_loop import _options as loop_options
from tests.test_train_worker import state_of, tiny_config, tiny_dataset
from tests.tiny import num_threads

STEPS, SELECT_AT = 6, 4


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


def _options(out_dir, **changes) -> train.RunOptions:
    return loop_options(out_dir, **{"seed": 1, "checkpoint_every": 2, "figure_every": 0, **changes})


def _score_of_checkpoint(path, images) -> float:
    """A start's score recomputed from its checkpoint in freshly built programs."""
    checkpoint = pe.io.load_checkpoint(path)
    config = pe.EMORLConfig.from_dict(checkpoint["config"])
    model, guide = pe.build(config)
    model.load_state_dict(checkpoint["model"])
    guide.load_state_dict(checkpoint["guide"])
    return negative_elbo(config, model, guide, images)


def test_the_start_with_the_lowest_negative_elbo_is_continued_as_one_plain_run(tmp_path):
    config, data = tiny_config(steps=STEPS), tiny_dataset()
    done = fit_best_start(
        config,
        data,
        _options(tmp_path / "starts"),
        starts=3,
        select_at=SELECT_AT,
        selection_images=8,
    )
    assert done.seeds == start_seeds(1, 3) == [3, 4, 5]
    record = json.loads((tmp_path / "starts" / "starts.json").read_text())
    assert record["best"] == done.best == min(done.scores, key=done.scores.get)
    assert len(set(done.scores.values())) == 3  # distinct starts, so the choice is a real one

    # The recorded scores are the negative ELBOs of the starts' checkpoints at the selection
    # step, recomputed here in fresh programs on the first 8 training images.
    images = torch.stack([data[i][0] for i in range(8)])
    for seed in done.seeds:
        path = start_dir(tmp_path / "starts", seed) / "checkpoints" / f"step-{SELECT_AT:08d}.pt"
        assert _score_of_checkpoint(path, images) == pytest.approx(done.scores[seed], rel=1e-6)
        steps = [p.name for p in pe.io.list_checkpoints(path.parent)]
        assert steps[-1] == f"step-{(STEPS if seed == done.best else SELECT_AT):08d}.pt"

    # The best start, stopped at the selection step and continued, is the run of its seed
    # straight through: the selection adds nothing to what is trained.
    assert done.result.step == STEPS and done.result.out_dir == start_dir(
        tmp_path / "starts", done.best
    )
    straight = train.fit(config, data, _options(tmp_path / "straight", seed=done.best))
    for part, state in state_of(straight).items():
        if state is None:
            continue
        for name, value in state.items():
            assert torch.equal(state_of(done.result)[part][name], value), (part, name)


def test_a_resumed_run_keeps_its_choice_and_refuses_other_starts(tmp_path):
    config, data = tiny_config(steps=STEPS), tiny_dataset()
    first = fit_best_start(config, data, _options(tmp_path), starts=2, select_at=SELECT_AT)
    record = (tmp_path / "starts.json").read_text()
    longer = tiny_config(steps=STEPS + 2)
    again = fit_best_start(
        longer, data, _options(tmp_path, resume=True), starts=2, select_at=SELECT_AT
    )
    assert (again.best, again.scores, again.result.step) == (first.best, first.scores, STEPS + 2)
    assert (tmp_path / "starts.json").read_text() == record
    with pytest.raises(FileExistsError, match="starts.json records the starts of another run"):
        fit_best_start(config, data, _options(tmp_path), starts=2, select_at=SELECT_AT)
    with pytest.raises(ValueError, match=r"written for seeds \[2, 3\] compared at step 4"):
        fit_best_start(config, data, _options(tmp_path, resume=True), starts=3, select_at=4)


def test_the_time_budget_covers_every_start(tmp_path):
    # A budget the starts have used up leaves the best one a single step past the selection.
    done = fit_best_start(
        tiny_config(steps=STEPS),
        tiny_dataset(),
        _options(tmp_path, time_budget_s=1e-6),
        starts=2,
        select_at=2,
    )
    assert done.result.step == 3


def test_the_starts_of_different_seeds_never_share_an_initialisation():
    seen = [start_seeds(seed, 3) for seed in range(5)]
    assert len({s for seeds in seen for s in seeds}) == 15


@pytest.mark.parametrize(
    ("starts", "select_at", "images", "message"),
    [
        (0, 2, 8, "starts must be >= 1, got 0"),
        (2, 0, 8, "select_at must be between 1 and the run's 6 steps, got 0"),
        (2, 7, 8, "select_at must be between 1 and the run's 6 steps, got 7"),
        (2, 2, 25, "selection_images must be between 1 and the 24 training images, got 25"),
    ],
)
def test_bad_settings_are_refused_before_any_training(tmp_path, starts, select_at, images, message):
    with pytest.raises(ValueError, match=message):
        fit_best_start(
            tiny_config(steps=STEPS),
            tiny_dataset(),
            _options(tmp_path),
            starts=starts,
            select_at=select_at,
            selection_images=images,
        )
    assert not any(tmp_path.iterdir())


def test_the_learning_benchmark_counts_every_start_in_its_curve(tmp_path):
    """`benchmarks/learning.py --starts`: the continued start's curve, its seconds including the
    other starts' training, and each start's own curve to the selection step."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "learning.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYRO_EMORL_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, str(script), "--threads", "1", "--num-train", "32", "--steps", "4"]
    argv += [
        "--starts",
        "2",
        "--select-at",
        "2",
        "--eval-every",
        "2",
        "--out",
        str(tmp_path / "run"),
    ]
    out = json.loads(
        subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    )
    starts = out["starts"]
    assert starts["seeds"] == [0, 1] and starts["best"] in (0, 1)
    assert starts["best"] == min(starts["seeds"], key=lambda s: starts["scores"][str(s)])
    seconds = {int(s): v for s, v in starts["train_seconds"].items()}
    other = seconds[1 - starts["best"]]
    first = starts["best"] == 0
    own = {p["step"]: p["train_seconds"] for p in starts["curves"][str(starts["best"])]}
    assert [p["step"] for p in out["curve"]] == [0, 2, 4]
    for point in out["curve"][:2]:  # before the selection: the starts trained before this one
        expected = own[point["step"]] + (0 if first else other)
        assert point["train_seconds"] == pytest.approx(expected, abs=0.11)
    assert out["curve"][2]["train_seconds"] > own[2] + other  # after it: every other start too


def test_the_learning_benchmark_tables_seeds_as_separate_runs_would(tmp_path):
    """`benchmarks/learning.py --seeds 2`: each seed's curve is what a run of that seed alone
    gives, and the table's levels are the first evaluations that reach them."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "learning.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYRO_EMORL_CACHE": str(tmp_path / "cache")}
    common = [sys.executable, str(script), "--threads", "1", "--num-train", "32", "--steps", "2"]
    common += ["--eval-every", "1"]
    table_path = tmp_path / "screen.json"
    subprocess.run(
        [*common, "--seeds", "2", "--jobs", "2", "--table", str(table_path)],
        env=env,
        check=True,
        capture_output=True,
    )
    table = json.loads(table_path.read_text())
    alone = subprocess.run(
        [*common, "--seed", "1", "--out", str(tmp_path / "alone")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    curve = json.loads(alone.stdout)["curve"]
    strip = [{k: v for k, v in p.items() if k != "train_seconds"} for p in curve]
    tabled = table["curves"]["1"]
    assert [{k: v for k, v in p.items() if k != "train_seconds"} for p in tabled] == strip
    assert table["table"]["of"] == 2 and sorted(table["table"]["seeds"]) == ["0", "1"]
    for seed, row in table["table"]["seeds"].items():
        scores = [p["generated"]["fg_ari"][0] for p in table["curves"][seed]]
        assert row["last"]["fg_ari"] == scores[-1]
        for level in ("0.5", "0.8", "0.95"):
            first = next((i for i, s in enumerate(scores) if s >= float(level)), None)
            expected = None if first is None else table["curves"][seed][first]["step"]
            assert (row[level] or {}).get("step") == expected
    assert table["table"]["reached"] == {
        level: sum(row[level] is not None for row in table["table"]["seeds"].values())
        for level in ("0.5", "0.8", "0.95")
    }


def test_the_learning_benchmark_trains_a_preset_registered_by_a_file(tmp_path):
    """`benchmarks/learning.py --import FILE.py --recipe NAME`: the file's preset, with the
    file's own decoder, is the one trained (named in the run's configuration), and a file that
    does not exist is refused in one line before any training."""
    plugin = tmp_path / "halved.py"
    plugin.write_text(
        "from torch import nn\n"
        "from pyro_emorl import register\n"
        "from pyro_emorl.nn.decoder import SpatialBroadcastDecoder\n"
        "from pyro_emorl.presets import tetrominoes_fast\n\n\n"
        "class Halved(nn.Module):\n"
        "    def __init__(self, config):\n"
        "        super().__init__()\n"
        "        size = config.image_shape[1:]\n"
        "        self.inner = SpatialBroadcastDecoder(config.z_dim, size, 'small')\n"
        "        self.image_size = self.inner.image_size\n\n"
        "    def forward(self, z):\n"
        "        rgb, logits = self.inner(z)\n"
        "        return rgb, 0.5 * logits\n\n\n"
        "@register('decoder', 'halved_masks')\n"
        "def halved_masks(config):\n"
        "    return Halved(config)\n\n\n"
        "@register('preset', 'halved_tetrominoes', data='tetrominoes')\n"
        "def halved_tetrominoes(**overrides):\n"
        "    return tetrominoes_fast(decoder='halved_masks', **overrides)\n"
    )
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "learning.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYRO_EMORL_CACHE": str(tmp_path / "cache")}
    argv = [sys.executable, str(script), "--threads", "1", "--num-train", "32", "--steps", "1"]
    argv += ["--eval-every", "1", "--import", str(plugin), "--recipe", "halved_tetrominoes"]
    done = subprocess.run(
        [*argv, "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["recipe"] == "halved_tetrominoes"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["decoder"] == "halved_masks"
    missing = [a if a != str(plugin) else str(tmp_path / "absent.py") for a in argv]
    refused = subprocess.run(
        [*missing, "--out", str(tmp_path / "refused")], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "absent.py: no such file" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "refused").exists()
