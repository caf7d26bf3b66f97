"""Decode images once into uint8 tensors, cached on disk per dataset, size and decoder.

Training never touches JPEGs: every epoch, trial and retrain indexes into one
N x 3 x S x S uint8 array (about 12 KB an image at 64 px).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gender.data.layouts import DatasetIndex
from gender.errors import DataError
from gender.images import PREPROCESS_VERSION, ImageError, decode_image
from gender.io import atomic_path

__all__ = ["load_arrays", "TensorData", "cache_dir", "cache_path"]


def cache_dir() -> Path:
    return Path(os.environ.get("GENDER_CACHE", Path.home() / ".cache" / "gender-tune"))


def cache_path(index: DatasetIndex, size: int, cache: Path | None = None,
               crop: float = 1.0) -> Path:
    """Keyed by the data (fingerprint), the size, the crop and the decoder's version: a
    change to decoding or cropping never serves stale arrays."""
    view = f"{size}px" + (f"-crop{crop:g}" if crop != 1.0 else "")
    return (cache or cache_dir()) / f"{index.fingerprint()}-{view}-p{PREPROCESS_VERSION}.npy"


def _decode_all(index: DatasetIndex, size: int, crop: float) -> np.ndarray:
    out = np.empty((len(index.samples), 3, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        path = index.path(index.samples[i])
        try:
            out[i] = decode_image(path, size, crop)
        except ImageError as e:
            raise DataError(f"{path}: {e}") from None

    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(one, range(len(index.samples))))
    return out


def load_arrays(index: DatasetIndex, size: int, cache: Path | None = None,
                crop: float = 1.0) -> np.ndarray:
    """All images of `index` (in its order) as uint8 N x 3 x size x size, via the cache."""
    path = cache_path(index, size, cache, crop)
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (len(index.samples), 3, size, size) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass  # a damaged cache file is decoded again and replaced
    arr = _decode_all(index, size, crop)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    except OSError:
        pass  # a read-only cache only costs a re-decode next time
    return arr


@dataclass
class TensorData:
    """Decoded images, labels and split indices: everything a training run reads."""

    images: torch.Tensor  # uint8 N x 3 x S x S, CPU (may view a read-only shared buffer)
    labels: torch.Tensor  # float32 N, 1 = male
    splits: dict[str, np.ndarray]  # split name -> row indices into images
    crop: float = 1.0  # the fraction of each picture's shorter side the images show

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def view(self) -> tuple[int, float]:
        """(image size, crop): what a `TrainConfig.input_view` must match to train on it."""
        return self.image_size, self.crop

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels, splits: dict,
                    crop: float = 1.0) -> TensorData:
        with warnings.catch_warnings():
            # Arrays from Ray's object store are read-only; we never write to them.
            warnings.simplefilter("ignore", UserWarning)
            imgs = torch.from_numpy(images)
        return cls(imgs, torch.as_tensor(np.asarray(labels), dtype=torch.float32),
                   {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}, float(crop))
