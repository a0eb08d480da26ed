"""Run a benchmark script once per preset, each in its own process (so peak RSS is its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Sequence


def run_per_preset(script: str, presets: Iterable[str], flags: Sequence[str]) -> list[dict]:
    """Run ``script --worker --preset P *flags`` for every preset; collect each JSON result line."""
    results = []
    for preset in presets:
        command = [sys.executable, script, "--worker", "--preset", preset, *flags]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
