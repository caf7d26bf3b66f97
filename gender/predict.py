"""Label images with a saved model: the same decode and preprocessing as training."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import UnidentifiedImageError

from gender.data.tensors import decode_image
from gender.engine import predict_probs, resolve_device
from gender.errors import UserError
from gender.export import load_model

__all__ = ["iter_images", "predict"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def iter_images(paths: list[str]) -> Iterator[Path]:
    """Files as given; folders walked (sorted) for image files."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
        elif p.exists():
            yield p
        else:
            raise UserError(f"{raw}: no such file or directory")


def predict(model_path: str, paths: list[str], device: str = "auto",
            batch_size: int = 64) -> Iterator[dict]:
    """Yield {"path", "label", "prob_male"} or {"path", "error"} per image, in order."""
    dev = resolve_device(device)
    model, cfg, _ = load_model(model_path, dev)
    files = list(iter_images(paths))  # validates every PATH before any work
    for start in range(0, len(files), batch_size):
        chunk, arrays, rows = files[start:start + batch_size], [], []
        for f in chunk:
            try:
                arrays.append(decode_image(f, cfg.image_size))
                rows.append({"path": str(f)})
            except (OSError, UnidentifiedImageError, ValueError) as e:
                rows.append({"path": str(f), "error": f"cannot read image: {e}"})
        probs = iter(predict_probs(model, torch.from_numpy(np.stack(arrays)), dev)
                     if arrays else [])
        for row in rows:
            if "error" not in row:
                p = float(next(probs))
                row.update(label="male" if p >= 0.5 else "female", prob_male=round(p, 6))
            yield row
