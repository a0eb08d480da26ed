"""`emorl generate` and `emorl convert` SIGKILLed at random moments while they write: the output
is absent or complete, an existing file is never destroyed, and the next run leaves no temporary
file (the checks after every kill are in `data_kill_worker.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("data_kill_worker.py")
KILLS = 12


@pytest.mark.parametrize("command", ["generate", "convert"])
def test_killed_at_random_moments_the_output_is_the_old_file_or_complete(
    command: str, tmp_path: Path
) -> None:
    seen = dict.fromkeys(("kills", "temporary_left", "old"), 0)
    # Every kill is checked inside the worker (a wrong output fails the run at once). Which
    # cases the random moments hit depends on the machine's pace, so another set of moments is
    # drawn, at most twice, until the kills have covered a write interrupted mid-way (a
    # temporary left behind) and an --overwrite run killed before its rename (the old file).
    for seed in (20240607, 1, 2):
        # A folder per draw: the worker writes its reference and output files afresh.
        directory = tmp_path / f"moments-{seed}"
        argv = [sys.executable, str(WORKER), str(directory), command, "--kills", str(KILLS)]
        done = subprocess.run(
            [*argv, "--moments-seed", str(seed)],
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            timeout=600,
            stdout=subprocess.PIPE,
            text=True,
        )
        outcomes = json.loads(done.stdout.strip().splitlines()[-1])
        seen = {k: v + outcomes[k] for k, v in seen.items()}
        if seen["kills"] >= KILLS // 2 and seen["temporary_left"] >= 1 and seen["old"] >= 1:
            break
    assert seen["kills"] >= KILLS // 2, seen
    assert seen["temporary_left"] >= 1, seen  # which a later run removed
    assert seen["old"] >= 1, seen  # an --overwrite run killed before its rename
