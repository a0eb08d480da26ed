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
    argv = [sys.executable, str(WORKER), str(tmp_path), command, "--kills", str(KILLS)]
    done = subprocess.run(
        [*argv, "--moments-seed", "20240607"],
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
        stdout=subprocess.PIPE,
        text=True,
    )
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    # Moments up to 1.2 run times: most runs are killed, and most kills land in the write.
    assert outcomes["kills"] >= KILLS // 2, outcomes
    assert outcomes["temporary_left"] >= 1, outcomes  # which a later run removed
    assert outcomes["old"] >= 1, outcomes  # an --overwrite run killed before its rename
