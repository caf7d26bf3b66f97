"""Decode images once into uint8 tensors, cached on disk per dataset and size.

Training never touches JPEGs: every epoch, trial and retrain indexes into one
N x 3 x S x S uint8 array (about 12 KB an image at 64 px).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from gender.data.layouts import DatasetIndex
from gender.errors import DataError

__all__ = ["decode_image", "load_arrays", "TensorData", "cache_dir", "PREPROCESS"]

# How an image becomes a tensor; saved into every model so `predict` does the same.
PREPROCESS = {"crop": "center-square", "resize": "bilinear-antialias", "scale": "0-255 uint8"}


def cache_dir() -> Path:
    return Path(os.environ.get("GENDER_CACHE", Path.home() / ".cache" / "gender-tune"))


def decode_image(path: str | Path, size: int) -> np.ndarray:
    """One image -> uint8 3 x size x size: the central square, resized.

    Aligned CelebA faces are 178x218 with the face in the middle, so the centre square
    keeps the face and drops background above and below.
    """
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        im = im.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def _decode_all(index: DatasetIndex, size: int) -> np.ndarray:
    out = np.empty((len(index.samples), 3, size, size), dtype=np.uint8)

    def one(i: int) -> None:
        path = index.path(index.samples[i])
        try:
            out[i] = decode_image(path, size)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"{path}: cannot decode image ({e})") from None

    # PIL releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(one, range(len(index.samples))))
    return out


def load_arrays(index: DatasetIndex, size: int, cache: Path | None = None) -> np.ndarray:
    """All images of `index` (in its order) as uint8 N x 3 x size x size, via the cache."""
    cache = cache or cache_dir()
    path = cache / f"{index.fingerprint()}-{size}px.npy"
    if path.is_file():
        arr = np.load(path, mmap_mode=None)
        if arr.shape == (len(index.samples), 3, size, size):
            return arr
    arr = _decode_all(index, size)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, path)  # atomic: concurrent runs never read a half-written cache
    except OSError:
        pass  # a read-only cache only costs a re-decode next time
    return arr


@dataclass
class TensorData:
    """Decoded images, labels and split indices: everything a training run reads."""

    images: torch.Tensor  # uint8 N x 3 x S x S, CPU (may view a read-only shared buffer)
    labels: torch.Tensor  # float32 N, 1 = male
    splits: dict[str, np.ndarray]  # split name -> row indices into images

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels, splits: dict) -> TensorData:
        import warnings

        with warnings.catch_warnings():
            # Arrays from Ray's object store are read-only; we never write to them.
            warnings.simplefilter("ignore", UserWarning)
            imgs = torch.from_numpy(images)
        return cls(imgs, torch.as_tensor(np.asarray(labels), dtype=torch.float32),
                   {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()})
