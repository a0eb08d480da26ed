"""Training processes do not load the heavy optional parts of the stack.

sklearn (DCI), scipy (Hungarian matching, entropy) and matplotlib's figures are needed only
by the functions that use them; importing them with the package cost every training process
about 130 MB of resident memory (measured: 387 MB -> 256 MB for ``import pyro_emorl.train``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import pyro_emorl as pe

HEAVY = ("sklearn", "scipy", "matplotlib.figure", "matplotlib.pyplot", "arviz")


def _loaded_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(out.stdout.splitlines()[-1])
    return [name for name in HEAVY if name in modules]


def test_importing_the_library_and_its_trainer_loads_none_of_the_heavy_modules() -> None:
    assert _loaded_after("import pyro_emorl, pyro_emorl.train") == []


def test_the_lazily_imported_functions_still_work() -> None:
    # mIoU's Hungarian matching (scipy): two objects whose predicted labels are swapped
    # still match perfectly.
    true = np.array([[[1, 1, 2, 2]]])
    assert pe.metrics.mean_iou(true, 3 - true).tolist() == [1.0]
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(40, 2))
    factors = np.stack([codes[:, 0], (codes[:, 1] > 0).astype(float)], axis=1)
    result = pe.metrics.dci(codes, factors, ["continuous", "discrete"], n_estimators=5)
    assert 0.0 <= result["disentanglement"] <= 1.0
