"""Model files: `model.pt` (state dict + config + preprocessing) and TorchScript.

`model.pt` holds only tensors and plain Python types, so it loads with
`torch.load(weights_only=True)`: a crafted pickle is refused, never run.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from gender.augment import MEAN, STD
from gender.config import TrainConfig
from gender.data.tensors import PREPROCESS
from gender.errors import UserError
from gender.models import VGG, build_model

__all__ = ["save_model", "load_model", "export_torchscript", "resolve_model_path", "FORMAT"]

FORMAT = "gender-tune/model/1"
CLASSES = ["female", "male"]


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash mid-write never leaves a truncated model behind


def save_model(path: str | Path, model: VGG, cfg: TrainConfig, metrics: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_save({
        "format": FORMAT, "config": cfg.to_dict(), "state_dict": state,
        "preprocess": {**PREPROCESS, "image_size": cfg.image_size,
                       "mean": list(MEAN), "std": list(STD)},
        "classes": CLASSES, "metrics": metrics or {},
    }, path)
    return path


def resolve_model_path(path: str | Path) -> Path:
    """MODEL may be `model.pt` or a folder holding one (e.g. results/<name>/best)."""
    p = Path(path)
    if p.is_dir():
        p = p / "model.pt"
    if not p.is_file():
        raise UserError(f"{path}: no model.pt there")
    return p


def load_model(path: str | Path,
               device: str | torch.device = "cpu") -> tuple[VGG, TrainConfig, dict]:
    """-> (model in eval mode, its config, the whole file's dict)."""
    p = resolve_model_path(path)
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise UserError(f"{p}: refused to load: not a plain weights file "
                        f"(weights_only=True rejected it: {first})") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise UserError(f"{p}: not a readable model file ({e})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserError(f"{p}: not a gender-tune model file (format {FORMAT} expected)")
    cfg = TrainConfig.from_dict({**blob["config"], "pretrained": None})
    model = build_model(cfg)
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), cfg, blob


class _Deployable(torch.nn.Module):
    """uint8 N x 3 x S x S (RGB, centre-cropped, resized) -> P(male): preprocessing inside,
    so the TorchScript file needs nothing else."""

    def __init__(self, model: VGG):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() / 255.0 - self.mean) / self.std
        return torch.sigmoid(self.model(x))


def export_torchscript(model: VGG, image_size: int, path: str | Path) -> Path:
    """Trace on CPU in eval mode: the file runs without this package installed."""
    path = Path(path)
    wrapped = _Deployable(model.to("cpu").eval()).eval()
    example = torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8)
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated upstream but still the portable, Python-free format.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(wrapped, example)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    traced.save(str(tmp))
    os.replace(tmp, path)
    return path
