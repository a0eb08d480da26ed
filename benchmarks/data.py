"""Throughput of the data layer; prints one JSON object.

    python benchmarks/data.py            # the paper's sizes (60,000 + 320 per generator)
    python benchmarks/data.py --quick    # small sizes, a few seconds

Measures: images/s of each generator (HDF5 writing included) and the wall time of the paper's
60,320 images; TFRecord records/s converted to HDF5 (Tetrominoes, Multi-dSprites and CLEVR-sized
records, written here in the official schemas); the TFRecord parse rate of this package next to
the `tfrecord` PyPI package when that is importable (the reason the parser is our own); and
images/s through a DataLoader over the HDF5 files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pyro_emorl.data import (
    HDF5Dataset,
    convert,
    decode_record,
    encode_record,
    generate,
    get_schema,
    iter_records,
    write_records,
)
from pyro_emorl.data import multi_dsprites as md
from pyro_emorl.data import tetrominoes as tet


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_generators(tmp: Path, num_train: int, num_test: int) -> dict:
    out = {}
    for name in ("tetrominoes", "multi_dsprites"):
        path = tmp / f"{name}.h5"
        _, seconds = _timed(
            lambda n=name, p=path: generate(n, p, num_train, num_test, progress=False)
        )
        total = num_train + num_test
        out[name] = {
            "images": total,
            "seconds": round(seconds, 2),
            "images_per_s": round(total / seconds),
            "file_mb": round(path.stat().st_size / 1e6, 1),
        }
    return out


def _scenes_to_records(schema, batch: dict[str, np.ndarray]) -> list[bytes]:
    names = [spec.name for spec in schema.factors]
    return [
        encode_record(
            schema,
            {
                "image": batch["imgs"][i],
                "mask": batch["masks"][i],
                **{k: batch[k][i] for k in names},
            },
        )
        for i in range(len(batch["imgs"]))
    ]


def _clevr_like(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """CLEVR-sized scenes (240x320, 11 entities) with box-shaped objects; pixels do not matter."""
    schema = get_schema("clevr_with_masks")
    h, w, e = schema.height, schema.width, schema.num_entities
    imgs = np.full((n, h, w, 3), 128, np.uint8)
    owner = np.zeros((n, h, w), np.int64)
    vis = np.zeros((n, e), np.float32)
    vis[:, 0] = 1
    for i in range(n):
        for k in range(1, rng.integers(3, e)):
            r, c = rng.integers(40, 200), rng.integers(60, 260)
            owner[i, r - 15 : r + 15, c - 15 : c + 15] = k
            imgs[i, r - 15 : r + 15, c - 15 : c + 15] = rng.integers(0, 256, 3)
            vis[i, k] = 1
    masks = (np.arange(e)[None, :, None, None] == owner[:, None]).astype(np.uint8) * 255
    batch = {"imgs": imgs, "masks": masks[..., None], "visibility": vis}
    for spec in schema.factors:
        if spec.name != "visibility":
            dtype = np.uint8 if spec.kind == "bytes" else np.float32
            batch[spec.name] = np.zeros((n, *spec.shape), dtype)
    return batch


def bench_conversion(tmp: Path, sizes: dict[str, int]) -> dict:
    rng = np.random.default_rng(0)
    sources = {
        "tetrominoes": (get_schema("tetrominoes"), tet.sample(rng, sizes["tetrominoes"])),
        "multi_dsprites": (get_schema("multi_dsprites"), md.sample(rng, sizes["multi_dsprites"])),
        "clevr_with_masks": (get_schema("clevr_with_masks"), _clevr_like(rng, sizes["clevr"])),
    }
    out = {}
    for name, (schema, batch) in sources.items():
        src = write_records(tmp / f"{name}.tfrecords", _scenes_to_records(schema, batch))
        n = len(batch["imgs"])
        runs = {"default": {}}
        if name == "clevr_with_masks":
            runs = {"default": {"max_objects": 10}, "resize_96": {"max_objects": 10, "resize": 96}}
        for label, extra in runs.items():
            start = time.perf_counter()
            summary = convert(
                name,
                src,
                tmp / f"converted_{name}.h5",
                num_train=n - 10,
                num_test=10,
                progress=False,
                **extra,
            )
            seconds = time.perf_counter() - start
            out[f"{name}/{label}"] = {
                "records": summary.records_read,
                "tfrecord_mb": round(src.stat().st_size / 1e6, 1),
                "seconds": round(seconds, 2),
                "records_per_s": round(summary.records_read / seconds),
            }
    return out


def bench_parsers(path: Path) -> dict:
    """Records/s of reading a GZIP TFRecord file into numpy arrays (no HDF5 writing)."""
    schema = get_schema("tetrominoes")

    def run_ours() -> int:
        count = 0
        for index, data in enumerate(iter_records(path)):
            decode_record(schema, data, index)
            count += 1
        return count

    n, ours = _timed(run_ours)
    out = {"records": n, "pyro_emorl_records_per_s": round(n / ours), "checks_crc": True}
    try:
        from tfrecord.reader import tfrecord_loader
    except ImportError:
        out["tfrecord_package"] = "not installed"
        return out

    description = {"image": "byte", "mask": "byte", "x": "float", "y": "float",
                   "shape": "float", "color": "float", "visibility": "float"}  # fmt: skip

    def run_tfrecord() -> int:
        count = 0
        for ex in tfrecord_loader(str(path), None, description, compression_type="gzip"):
            # Byte lists come back as numpy "S1" arrays, whose elements read b"" for a zero
            # byte (b"".join would silently drop every black pixel); view the raw bytes.
            ex["image"].view(np.uint8).reshape(35, 35, 3)
            ex["mask"].view(np.uint8).reshape(4, 35, 35, 1)
            count += 1
        return count

    m, theirs = _timed(run_tfrecord)
    out["tfrecord_package_records_per_s"] = round(m / theirs)
    out["tfrecord_package_checks_crc"] = False
    return out


def bench_loader(files: dict[str, Path], images: int) -> dict:
    out = {}
    for name, path in files.items():
        for workers in (0, 2):
            for masks in (False, True):
                ds = HDF5Dataset(path, "train", masks=masks, max_images=images)
                loader = DataLoader(ds, batch_size=32, num_workers=workers, shuffle=True)
                count, seconds = _timed(lambda ld=loader: sum(len(b["imgs"]) for b in ld))
                key = f"{name}/workers={workers}/masks={masks}"
                out[key] = {"images": count, "images_per_s": round(count / seconds)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    num_train, num_test = (2000, 320) if args.quick else (60_000, 320)
    sizes = (
        {"tetrominoes": 500, "multi_dsprites": 300, "clevr": 20}
        if args.quick
        else {"tetrominoes": 10_000, "multi_dsprites": 5_000, "clevr": 200}
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        result = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_before": [round(x, 2) for x in os.getloadavg()],
            },
            "generate": bench_generators(tmp, num_train, num_test),
        }
        result["convert"] = bench_conversion(tmp, sizes)
        result["parse"] = bench_parsers(tmp / "tetrominoes.tfrecords")
        files = {"tetrominoes": tmp / "tetrominoes.h5", "multi_dsprites": tmp / "multi_dsprites.h5"}
        result["dataloader"] = bench_loader(files, images=min(num_train, 10_000))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
