"""The screens' component files (``benchmarks/screens``): each registers what it says, and the
registered component does what its docstring says, against the library's own build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import torch
import pyro_emorl as pe

pe.import_components("benchmarks/screens/mask_scale.py")
pe.import_components("benchmarks/screens/position_scale.py")
base = pe.presets.get("tetrominoes_fast")

model, _ = pe.build(base)
options = {"mask_scale": 3.0}
scaled, _ = pe.build(base.replace(decoder="small_mask_scale", decoder_options=options))
scaled.decoder.decoder.load_state_dict(model.decoder.state_dict())
z = torch.randn(2, 4, base.z_dim)
rgb, logits = model.decoder(z)
scaled_rgb, scaled_logits = scaled.decoder(z)
assert torch.equal(scaled_rgb, rgb)
torch.testing.assert_close(scaled_logits, 3.0 * logits)

torch.manual_seed(0)
_, guide = pe.build(base)
torch.manual_seed(0)
config = pe.presets.get("tetrominoes_fast_position_scale", encoder_position_scale=0.25)
_, smaller = pe.build(config)
assert config.model == "emorl_position_scale"
weight = guide.encoder.position_projection.weight
torch.testing.assert_close(smaller.encoder.position_projection.weight, 0.25 * weight)
torch.testing.assert_close(smaller.encoder.convs[0].weight, guide.encoder.convs[0].weight)
print("ok")
"""


def test_the_screens_components_do_what_they_say():
    done = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
