"""Files a user or a hostile sender brings: small datasets in each layout, images that lie
about their size or are cut short, model files that are not what they claim, experiment
folders with one thing wrong. Real files, written with the same libraries a user has."""

from __future__ import annotations

import atexit
import functools
import io
import os
import pickle
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from gender.data.synth import CELEBA_ATTRIBUTES

__all__ = ["face", "labels_csv_dataset", "celeba_dataset", "class_folders", "png_bomb",
           "jpeg_bomb", "truncated_png", "model_file", "experiment", "EVIL_PICKLE_MARKER",
           "evil_pickle"]


def face(path: Path, i: int, male: bool, size: int = 32) -> Path:
    """A small PNG whose bytes differ for every `i` (so no two count as duplicates)."""
    rng = np.random.default_rng(i)
    base = np.array([60, 90, 200] if male else [200, 90, 60], dtype=np.int16)
    a = np.clip(base + rng.integers(-40, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path, format="PNG")
    return path


def _names(n_per_class: int) -> list[tuple[str, int]]:
    return [(f"{i + 1:06d}.png", i % 2) for i in range(2 * n_per_class)]


@functools.cache
def _faces(folder: str, n_per_class: int) -> Path:
    """The images of a dataset, drawn once per process and copied from then on."""
    root = tempfile.mkdtemp(prefix="gender-faces-")
    atexit.register(shutil.rmtree, root, True)
    out = Path(root) / folder
    for name, male in _names(n_per_class):
        face(out / name, int(name[:6]), bool(male))
    return out


def _images(root: Path, folder: str, n_per_class: int) -> None:
    shutil.copytree(_faces(folder, n_per_class), root / folder)


def labels_csv_dataset(root: Path, n_per_class: int = 25, rows: list[str] | None = None,
                       header: str = "Image,Male") -> Path:
    """`Images/` + `labels.csv`; `rows` replaces the generated label rows when given."""
    _images(root, "Images", n_per_class)
    lines = [header, *(rows if rows is not None else
                       [f"{n},{m}" for n, m in _names(n_per_class)])]
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def celeba_dataset(root: Path, n_per_class: int = 25, identity: bool = True,
                   partition: bool = True) -> Path:
    """CelebA's official layout: img_align_celeba/, list_attr_celeba.txt and side files."""
    names = _names(n_per_class)
    male_col = CELEBA_ATTRIBUTES.index("Male")
    attr = [str(len(names)), " ".join(CELEBA_ATTRIBUTES)]
    _images(root, "img_align_celeba", n_per_class)
    for name, male in names:
        values = ["-1"] * len(CELEBA_ATTRIBUTES)
        values[male_col] = "1" if male else "-1"
        attr.append(" ".join([name, *values]))
    (root / "list_attr_celeba.txt").write_text("\n".join(attr) + "\n")
    if identity:
        (root / "identity_CelebA.txt").write_text(
            "".join(f"{n} {i // 2 + 1}\n" for i, (n, _) in enumerate(names)))
    if partition:
        # 70/15/15 by position, both classes in every part.
        parts = ["0"] * 34 + ["1"] * 8 + ["2"] * 8
        (root / "list_eval_partition.txt").write_text(
            "".join(f"{n} {parts[i % len(parts)]}\n" for i, (n, _) in enumerate(names)))
    return root


def class_folders(root: Path, n_female: int = 25, n_male: int = 25) -> Path:
    for i in range(n_female):
        face(root / "female" / f"f{i:03d}.png", 1000 + i, False)
    for i in range(n_male):
        face(root / "male" / f"m{i:03d}.png", 2000 + i, True)
    return root


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(path: Path, side: int = 100_000) -> Path:
    """A few hundred bytes of PNG whose header claims side x side pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
                     + _chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + _chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, side: int = 60_000) -> Path:
    """A real small JPEG whose frame header is rewritten to claim side x side pixels (JPEG
    sizes stop at 65,535 a side: far beyond the limit already)."""
    side = min(side, 65_535)
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 64, 32)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def truncated_png(path: Path) -> Path:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def model_file(path: Path, mutate=None) -> Path:
    """A real model.pt (untrained, tiny); `mutate(blob)` damages the saved dict first."""
    import torch

    from gender.config import TrainConfig
    from gender.export import save_model
    from gender.models import build_model

    cfg = TrainConfig(width=0.0625, image_size=32)
    save_model(path, build_model(cfg), cfg)
    if mutate is not None:
        blob = torch.load(path, weights_only=True)
        blob = mutate(blob)
        torch.save(blob, path)
    return path


EVIL_PICKLE_MARKER = "pwned"


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_pickle(path: Path, marker: Path) -> Path:
    """A pickle that would run a shell command if anything unpickled it unsafely."""
    path.write_bytes(pickle.dumps({"format": "gender-tune/model/2", "x": _Evil(marker)}))
    return path


def experiment(root: Path, data: Path, name: str = "exp", trials: pd.DataFrame | None = None,
               splits: bool = True) -> Path:
    """An experiment folder as `gender tune` leaves it: experiment.json, splits.csv and
    trials.csv (one finished trial), without running a search."""
    from gender.data.layouts import read_dataset
    from gender.data.splits import make_splits, write_splits
    from tuning.settings import TuneSettings
    from tuning.space import load_space

    settings = TuneSettings(data=str(data), name=name, results=str(root), num_samples=1,
                            max_epochs=2, grace_period=1, space=load_space(None))
    settings.save()
    exp = settings.exp_dir
    if splits:
        write_splits(make_splits(read_dataset(data)), exp / "splits.csv")
    if trials is None:
        trials = trials_table()
    trials.to_csv(exp / "trials.csv", index=False)
    return exp


def trials_table(**changes) -> pd.DataFrame:
    """One finished trial as `tuning.outputs.trials_table` writes it; `changes` override."""
    row = {"trial_id": "00001", "arch": "vgg11", "batch_norm": True, "width": 0.125,
           "head": "gap", "optimizer": "adamw", "lr": 0.002, "momentum": None, "alpha": None,
           "weight_decay": 0.0005, "batch_size": 32, "dropout": 0.1, "image_size": 32,
           "augment": 0.1, "best_val_f1": 0.8, "best_val_accuracy": 0.8,
           "best_latency_ms_p50": 1.0, "best_epoch": 1, "epochs": 2,
           "status": "completed", "seconds": 3.0, "nodes": "n", "error": ""}
    row.update(changes)
    return pd.DataFrame([row])
