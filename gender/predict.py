"""Label pictures with a saved model: one `Predictor` for `gender predict` and the web app.

The same decoding as training (`gender.images`) and the same module (`Deployable`, the
model file's whole recipe), so a file gets the same P(male) from the command line and
from the API.

Two engines run that module: eager PyTorch ("torch": on CUDA with bf16 and channels_last
as in training) and ONNX Runtime ("onnx", CPU: the `model.onnx` graph). "auto" takes the
one the inference benchmark measured faster on CPU (`DEFAULT_CPU_ENGINE`) and PyTorch on
a GPU. `gender predict` and the web app both default to "auto", so they agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from gender.constants import CLASSES, DEFAULT_CPU_ENGINE, ENGINES, IMAGE_EXTENSIONS
from gender.engine import resolve_device
from gender.errors import UserError
from gender.export import LoadedModel, load_model, onnx_session
from gender.images import ImageError, decode_image
from gender.io import resolve_model_path
from gender.runtime import Runtime

__all__ = ["Predictor", "iter_images", "predict", "label_of", "resolve_engine"]


def label_of(prob_male: float) -> dict:
    """The one place a probability becomes an answer (rounded as every output shows it)."""
    return {"label": CLASSES[int(prob_male >= 0.5)], "prob_male": round(float(prob_male), 6)}


def iter_images(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files as given; folders walked (sorted) for image files. A missing path is an
    error before any work is done (the caller lists them first)."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*")
                              if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.exists():
            yield p
        else:
            raise UserError(f"{raw}: no such file or directory")


def resolve_engine(engine: str, device: torch.device) -> str:
    """"auto" -> the faster engine for `device`; "onnx" needs the CPU (the onnxruntime
    package this project installs has no GPU provider)."""
    if engine not in ENGINES:
        raise UserError(f"--engine {engine}: must be one of {', '.join(ENGINES)}")
    if engine == "auto":
        return DEFAULT_CPU_ENGINE if device.type == "cpu" else "torch"
    if engine == "onnx" and device.type != "cpu":
        raise UserError(f"--engine onnx: runs on the CPU only, not on {device} "
                        "(use --engine torch or auto there)")
    return engine


class Predictor:
    """A loaded model on one device and engine: uint8 pictures in, P(male) out."""

    def __init__(self, model: str | Path | LoadedModel, device: str = "cpu",
                 engine: str = "auto"):
        self.model = model if isinstance(model, LoadedModel) else load_model(model)
        self.runtime = Runtime(resolve_device(device))
        self.engine = resolve_engine(engine, self.runtime.device)
        if self.engine == "onnx":
            self.session = onnx_session(self.model)
        else:
            self.module = self.runtime.prepare_model(self.model.module).eval()
            self.module.channels_last = self.runtime.channels_last

    @property
    def image_size(self) -> int:
        return self.model.image_size

    def decode(self, source) -> np.ndarray:
        """A file or bytes -> uint8 3 x S x S, cropped as the model was trained (raises
        ImageError)."""
        return decode_image(source, self.image_size, self.model.crop)

    @torch.inference_mode()
    def predict_arrays(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 N x 3 x S x S -> P(male) as N float64."""
        out = []
        for start in range(0, len(images), batch_size):
            x = np.ascontiguousarray(images[start:start + batch_size])
            if self.engine == "onnx":
                out.append(self.session.run(None, {"images": x})[0].astype(np.float64))
                continue
            with self.runtime.autocast():
                p = self.module(torch.from_numpy(x).to(self.runtime.device))
            out.append(p.float().cpu().numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    def predict_files(self, files: list[Path], batch_size: int = 64) -> Iterator[dict]:
        """{"path", "label", "prob_male"} or {"path", "error"} per file, in order."""
        for start in range(0, len(files), batch_size):
            chunk, arrays, rows = files[start:start + batch_size], [], []
            for f in chunk:
                try:
                    arrays.append(self.decode(f))
                    rows.append({"path": str(f)})
                except ImageError as e:
                    rows.append({"path": str(f), "error": f"cannot read image: {e}"})
            probs = iter(self.predict_arrays(np.stack(arrays)) if arrays else [])
            for row in rows:
                if "error" not in row:
                    row.update(label_of(next(probs)))
                yield row


def predict(model_path: str, paths: list[str], device: str = "cpu",
            batch_size: int = 64, engine: str = "auto") -> Iterator[dict]:
    """Yield {"path", "label", "prob_male"} or {"path", "error"} per image, in order."""
    resolve_model_path(model_path)  # MODEL first, then every PATH, before any work
    files = list(iter_images(paths))
    if not files:  # an empty answer with exit 0 would read as "done"
        raise UserError(f"{', '.join(map(str, paths))}: no image files there (looked for "
                        f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    predictor = Predictor(model_path, device, engine)
    yield from predictor.predict_files(files, batch_size)
