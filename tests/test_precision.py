"""Lower-precision convolutions: how far float32 and bfloat16 move the loss and the gradients
from the official code's float64 numbers, and how the precision option is chosen and kept."""

from __future__ import annotations

import pytest
import torch

import pyro_emorl as pe
from pyro_emorl import train
from pyro_emorl.nn.decoder import SpatialBroadcastDecoder
from pyro_emorl.nn.precision import cpu_has_native_bf16, resolve_precision, set_conv_dtype
from tests.reference import expected_grads, fixture_paths, load_fixture, run_fixture
from tests.test_train_worker import tiny_config as tiny_run_config
from tests.test_train_worker import tiny_dataset
from tests.tiny import num_threads, tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    with num_threads(1):
        yield


# Bounds over the two bundled fixtures, set about 10x above what was measured on an AMD EPYC
# (Zen 5, AVX512-BF16): float32 loss 6.7e-7, gradients 1.3e-6; bfloat16 loss 9.2e-4,
# gradients 3.0e-2, cosine 0.99956.
BOUNDS = {
    "float32": {"loss": 1e-5, "grads": 1e-4, "cosine": 1 - 1e-9},
    "bfloat16": {"loss": 1e-2, "grads": 0.3, "cosine": 0.995},
}


def errors_against_float64(
    fixture: dict,
    conv_dtype: torch.dtype | None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> dict[str, float]:
    """The relative loss and gradient errors and the gradients' cosine against the official
    float64 numbers, with ``dtype`` parameters and ``conv_dtype`` convolutions on ``device``."""
    ours = run_fixture(fixture, dtype, conv_dtype, device)
    expected = expected_grads(fixture, ours["config"])
    names = sorted(ours["grads"])
    got = torch.cat(
        [
            torch.zeros(expected[n].numel(), dtype=torch.float64)
            if ours["grads"][n] is None
            else ours["grads"][n].double().cpu().flatten()
            for n in names
        ]
    )
    want = torch.cat([expected[n].double().flatten() for n in names])
    loss, reference = float(ours["total_loss_official"]), float(fixture["expected"]["total_loss"])
    return {
        "loss": abs(loss - reference) / abs(reference),
        "grads": float((got - want).norm() / want.norm()),
        "cosine": float(got @ want / (got.norm() * want.norm())),
    }


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("path", fixture_paths(), ids=lambda p: p.stem)
def test_loss_and_gradient_error_against_the_official_float64(path, precision) -> None:
    conv_dtype = torch.bfloat16 if precision == "bfloat16" else None
    errors = errors_against_float64(load_fixture(path), conv_dtype)
    bound = BOUNDS[precision]
    assert errors["loss"] <= bound["loss"], errors
    assert errors["grads"] <= bound["grads"], errors
    assert errors["cosine"] >= bound["cosine"], errors
    if precision == "bfloat16":  # the autocast really ran: float32 is far closer
        assert errors["loss"] > 10 * BOUNDS["float32"]["loss"], errors


def test_bfloat16_stays_inside_the_convolution_stacks() -> None:
    model, guide = pe.build(tiny_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert set_conv_dtype(model, torch.bfloat16) + set_conv_dtype(guide, torch.bfloat16) == 2
    images = torch.rand(2, *tiny_config().image_shape)
    decomposition = pe.decompose(model, guide, images, num_steps=1)
    assert decomposition.final.reconstruction.dtype == torch.float32
    assert decomposition.final.kl.dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind", ["small", "iodine"])
@pytest.mark.parametrize("conv_dtype", [torch.bfloat16, None])
def test_the_decoders_first_layer_runs_in_the_convolution_dtype(kind, conv_dtype) -> None:
    """The first layer's output, the largest tensor of the decoder, is made in ``conv_dtype``
    (not made in float32 and cast); the decoder's outputs are float32 either way."""
    decoder = SpatialBroadcastDecoder(8, (12, 12), kind)
    set_conv_dtype(decoder, conv_dtype)
    seen: list[torch.dtype] = []
    decoder.convs[1].register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    rgb, logits = decoder(torch.randn(2, 3, 8))
    assert seen == [conv_dtype or torch.float32]
    assert rgb.dtype == logits.dtype == torch.float32


@pytest.mark.parametrize("kind", ["small", "iodine"])
@pytest.mark.parametrize("conv_dtype", [torch.bfloat16, None])
def test_every_decoder_layer_sees_channels_last_input_on_cpu(kind, conv_dtype) -> None:
    """oneDNN convolves channels-last tensors without copying them (a channels-first input
    costs a copy in every convolution forward and backward); the first layer's output sets
    the layout of all the layers after it."""
    decoder = SpatialBroadcastDecoder(8, (12, 12), kind)
    set_conv_dtype(decoder, conv_dtype)
    layouts: list[bool] = []
    for layer in decoder.convs[1:]:
        layer.register_forward_pre_hook(
            lambda module, args: layouts.append(
                args[0].is_contiguous(memory_format=torch.channels_last)
            )
        )
    decoder(torch.randn(2, 3, 8))
    assert layouts == [True] * (len(decoder.convs) - 1)


CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 {extra}\n"


@pytest.mark.parametrize(
    ("extra", "native"),
    [("", False), ("avx512f avx512bw", False), ("avx512f avx512_bf16", True), ("amx_bf16", True)],
)
def test_native_bf16_is_read_from_the_cpu_flags(extra, native) -> None:
    assert cpu_has_native_bf16(CPUINFO.format(extra=extra)) is native


def test_precision_settings() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) is None
    assert resolve_precision("bfloat16", cpu) is torch.bfloat16
    assert resolve_precision("auto", cpu) is (torch.bfloat16 if cpu_has_native_bf16() else None)
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16, auto"):
        train.RunOptions(precision="fp16")


def test_a_run_resumes_only_with_its_precision(tmp_path) -> None:
    config = tiny_run_config(steps=2, batch_size=2)
    data = tiny_dataset(8)

    def options(precision: str, resume: bool) -> train.RunOptions:
        return train.RunOptions(
            out_dir=tmp_path,
            device="cpu",
            resume=resume,
            figure_every=0,
            progress=False,
            tensorboard=False,
            precision=precision,
        )

    train.fit(config, data, options("bfloat16", False))
    checkpoint = torch.load(pe.io.latest_checkpoint(tmp_path / "checkpoints"), weights_only=False)
    assert checkpoint["conv_dtype"] == "bfloat16"
    longer = tiny_run_config(steps=3, batch_size=2)
    with pytest.raises(ValueError, match="trained with bfloat16 convolutions, not float32"):
        train.fit(longer, data, options("float32", True))
    assert train.fit(longer, data, options("bfloat16", True)).step == 3
