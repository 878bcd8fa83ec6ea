"""Compressed MR instances: RLE by pydicom, JPEG by dcmtk's ``dcmcjpeg``.

pydicom encodes RLE itself but not JPEG, so the JPEG cases call dcmtk (installed on the
development machines and in CI) on a temporary file.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from tests.corpus.base import mr_dataset, part10

DCMCJPEG = "dcmcjpeg"


def rle_mr() -> bytes:
    """An MR instance in RLE Lossless."""
    ds = mr_dataset()
    ds.compress(RLELossless, generate_instance_uid=False)
    return part10(ds, RLELossless)


def _eight_bit(ds: Dataset) -> Dataset:
    pixels = np.frombuffer(ds.PixelData, dtype=np.uint16) % 256
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    return ds


def jpeg_mr(mode: str) -> bytes:
    """An MR instance JPEG-compressed by ``dcmcjpeg``: ``baseline`` (8-bit) or ``lossless``."""
    options = {"baseline": ["+eb"], "lossless": ["+e1"]}[mode]
    ds = mr_dataset()
    if mode == "baseline":
        ds = _eight_bit(ds)
    tool = shutil.which(DCMCJPEG)
    if tool is None:
        raise FileNotFoundError(f"{DCMCJPEG} (dcmtk) is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.dcm"), Path(tmp, "out.dcm")
        src.write_bytes(part10(ds))
        subprocess.run([tool, *options, str(src), str(dst)], check=True, capture_output=True)
        return dst.read_bytes()
