"""Data for EfficientMORL: generators, a TensorFlow-free TFRecord converter, a ClevrTex
converter, and HDF5 datasets.

Everything produces or reads the HDF5 layout of the official code: a group per split with
``imgs`` uint8 [N, H, W, 3], ``masks`` uint8 [N, E, H, W, 1] (0/255, entity 0 = background) and
``factors``. See ``docs/datasets.md``.
"""

from pyro_emorl.data.clevrtex import convert_clevrtex
from pyro_emorl.data.conversion import ConversionSummary, convert
from pyro_emorl.data.dataset import HDF5Dataset
from pyro_emorl.data.errors import DataFormatError, RecordError
from pyro_emorl.data.generation import (
    GENERATOR_VARIANTS,
    GENERATORS,
    default_dataset,
    generate,
)
from pyro_emorl.data.records import decode_record, encode_record
from pyro_emorl.data.schemas import DATASETS, Schema, get_schema
from pyro_emorl.data.tfrecord import iter_records, write_records

__all__ = [
    "DATASETS",
    "GENERATOR_VARIANTS",
    "GENERATORS",
    "ConversionSummary",
    "DataFormatError",
    "HDF5Dataset",
    "RecordError",
    "Schema",
    "convert",
    "convert_clevrtex",
    "decode_record",
    "default_dataset",
    "encode_record",
    "generate",
    "get_schema",
    "iter_records",
    "write_records",
]
