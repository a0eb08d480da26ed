#!/bin/bash
# The GPU checks, in one go, on a machine with CUDA:
#
#   bash benchmarks/gpu_checks.sh PATH/TO/EfficientMORL OUT_DIR [SECONDS]
#
# 1. tests/test_cuda.py (the official fixtures in float64, float32 and bfloat16 on the GPU;
#    `emorl train` with held-out evaluation, `emorl evaluate`, `emorl visualize`; the shipped
#    model), and the fixtures' errors against the official float64 numbers as JSON;
# 2. benchmarks/vs_official.py on the GPU at batch 32: the training step eager (float32,
#    bfloat16), compiled (with and without CUDA graphs), and inference at I = 3;
# 3. the paper's Tetrominoes recipe (benchmarks/learning.py --device cuda) for the time left
#    of SECONDS (default 570) counted from the start, then `emorl evaluate` of its last
#    checkpoint on the 320 held-out images.
#
# Every JSON lands in OUT_DIR, with the logs, the run's metrics.jsonl and last checkpoint
# (rest.tgz). The official checkout is imported from its path, never copied; the python that
# runs this script (python3, or $PY) must have what the official code needs (sacred with
# setuptools < 81, h5py, warmup-scheduler) as well as this library's dependencies.
set -u
OFFICIAL=${1:?usage: gpu_checks.sh OFFICIAL_DIR OUT_DIR [SECONDS]}
OUT=${2:?usage: gpu_checks.sh OFFICIAL_DIR OUT_DIR [SECONDS]}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
T0=$(date +%s)
END=$((T0 + ${3:-570}))
left() { echo $((END - $(date +%s))); }
stamp() { echo "=== $(($(date +%s) - T0)) s: $*"; }
PY=${PY:-$(command -v python3)}
DEV=${DEV:-cuda}
WORK=$(mktemp -d)
export PYRO_EMORL_CACHE=${PYRO_EMORL_CACHE:-$WORK/cache}
DATA=$PYRO_EMORL_CACHE/tetrominoes-v1-train60000-test320-seed0.h5

stamp environment
{ nvidia-smi; lscpu | head -20; $PY -c "import torch, pyro; print(torch.__version__, pyro.__version__, torch.cuda.is_available())"; } >"$OUT/env.txt" 2>&1
tail -1 "$OUT/env.txt"
# the paper's 60,000 training images, generated while the tests run
$PY -c "from pyro_emorl.data import default_dataset as d; d('tetrominoes', progress=False)" >"$WORK/gen.log" 2>&1 &
GEN=$!

stamp tests/test_cuda.py
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py -rs 2>&1 | tail -25
timeout 60 $PY - >"$OUT/fixtures_errors.json" <<'PYEOF'
import json, os, torch
from tests.reference import fixture_paths, load_fixture
from tests.test_precision import errors_against_float64
device = os.environ.get("DEV", "cuda")
out = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu"}
for path in fixture_paths():
    for name, dtype, conv in (
        ("float64", torch.float64, None),
        ("float32", torch.float32, None),
        ("bfloat16", torch.float32, torch.bfloat16),
    ):
        torch.set_default_dtype(dtype)
        errors = errors_against_float64(load_fixture(path), conv, dtype, device=device)
        out[f"{path.stem}/{name}"] = errors
        torch.set_default_dtype(torch.float32)
print(json.dumps(out, indent=1))
PYEOF

VS=($PY benchmarks/vs_official.py --official-dir "$OFFICIAL" --official-python "${OPY:-$PY}" --device "$DEV" --threads 4)
ROUNDS=(--rounds "${ROUNDS:-8}" --steps-per-round "${SPR:-5}" --warmup 3)
stamp vs_official, training, eager
timeout 120 "${VS[@]}" --cases tetrominoes-b32-i3 "${ROUNDS[@]}" --precisions float32 bfloat16 \
    >"$OUT/vs_official_train.json" 2>"$WORK/vs_official_train.log"
echo "rc $?"
stamp vs_official, training, compiled
timeout 170 "${VS[@]}" --cases tetrominoes-b32-i3 "${ROUNDS[@]}" --compile default reduce-overhead \
    >"$OUT/vs_official_compiled.json" 2>"$WORK/vs_official_compiled.log"
echo "rc $?"
stamp vs_official, inference
timeout 70 "${VS[@]}" --cases infer-tetrominoes-b32-i3 "${ROUNDS[@]}" --precisions float32 bfloat16 \
    >"$OUT/vs_official_infer.json" 2>"$WORK/vs_official_infer.log"
echo "rc $?"

wait $GEN
stamp the paper recipe
MINUTES=$($PY -c "print(max(0.5, ($(left) - 100) / 60))")
echo "training minutes: $MINUTES"
timeout $(($(left) - 40)) $PY benchmarks/learning.py --recipe tetrominoes --device "$DEV" \
    --threads 4 --seed 0 --eval-every "${EVAL:-500}" --minutes "$MINUTES" --out "$WORK/paper" \
    >"$OUT/learning_paper.json" 2>"$WORK/learning.log"
echo "rc $?"
CHECKPOINT=$(ls "$WORK"/paper/checkpoints/step-*.pt | tail -1)
stamp "evaluate $CHECKPOINT"
timeout $(($(left) + 5)) $PY -m pyro_emorl.cli evaluate "$CHECKPOINT" --data "$DATA" \
    --device "$DEV" --num-images 320 --out "$WORK/evaluate_paper.json" --no-progress 2>&1 | tail -9
mkdir -p "$WORK/pack"
cp "$WORK/paper/metrics.jsonl" "$CHECKPOINT" "$WORK"/*.log "$WORK/evaluate_paper.json" "$WORK/pack/"
tar -czf "$OUT/rest.tgz" -C "$WORK/pack" .
stamp done
