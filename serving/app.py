"""The Ray Serve deployment: in each replica, the model and the web app over it.

One deployment, not an ingress in front of a model deployment: a request then crosses one
process boundary (proxy -> replica) instead of two, and replicas scale the page, the
decoding and the model together. Concurrent requests to a replica meet in `_batched`
(`@serve.batch`) and share one forward pass.

The model travels with the deployment: the driver (or the builder `serve.yaml` names)
reads `model.pt`, `model.onnx` and the JSON beside them, and each replica writes them into
a private temporary folder on its own node. Workers need no shared storage.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from ray import serve

from gender.constants import (
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    ONNX_FILE,
)
from gender.errors import UserError
from gender.io import resolve_model_path
from serving.options import ServeOptions

__all__ = ["APP_NAME", "GenderApp", "ServeOptions", "build", "build_app", "read_model_files"]

APP_NAME = "gender"
_SHIPPED = (MODEL_FILE, ONNX_FILE, METRICS_FILE, CONFIG_FILE, ENVIRONMENT_FILE)


def read_model_files(model: str | Path) -> tuple[str, dict[str, bytes]]:
    """MODEL (a folder or its model.pt) -> (a display name, {file name: bytes}) of the
    files a replica needs. The model is loaded once here, the safe way, so a bad file
    fails before anything starts."""
    from gender.export import load_model

    path = resolve_model_path(model)
    load_model(path)  # raises UserError for a crafted pickle or a broken file
    folder = path.parent
    shipped = {MODEL_FILE: path.read_bytes()}
    shipped.update({name: (folder / name).read_bytes() for name in _SHIPPED[1:]
                    if (folder / name).is_file()})
    return f"{folder.resolve().parent.name}/{folder.resolve().name}", shipped


@serve.deployment(name="GenderApp", max_ongoing_requests=32, health_check_period_s=5,
                  health_check_timeout_s=30, graceful_shutdown_timeout_s=5)
@serve.ingress()
class GenderApp:
    """The model in this replica's process, the web app (`gender.web`) over it."""

    def __init__(self, name: str, files: dict[str, bytes], options: dict):
        import torch

        from gender.predict import Predictor
        from gender.web import model_info

        self.options = ServeOptions(**options)
        self.folder = Path(tempfile.mkdtemp(prefix="gender-serve-"))
        for fname, data in files.items():
            (self.folder / fname).write_bytes(data)
        # Ray shows a GPU replica its GPU(s) only; with none there (or no CUDA), the CPU.
        device = "cuda" if self.options.gpus_per_replica and torch.cuda.is_available() \
            else "cpu"
        self.predictor = Predictor(self.folder, device, self.options.engine)
        self.image_size, self.crop = self.predictor.image_size, self.predictor.model.crop
        self.info = {**model_info(self.predictor.model, self.predictor.engine, device),
                     "name": name}
        self._active = 0  # requests of this replica between decode and answer
        self._batched.set_max_batch_size(self.options.max_batch_size)
        self._batched.set_batch_wait_timeout_s(self.options.batch_wait_ms / 1000)
        self.predictor.predict_arrays(np.zeros((1, 3, self.image_size, self.image_size),
                                               np.uint8))  # warm-up before the first user

    def __serve_build_asgi_app__(self):
        from gender.web import create_app

        return create_app(self, token=self.options.token)

    async def predict(self, images: list[np.ndarray]) -> list[float]:
        """The web app's backend call. Requests that overlap in this replica meet in
        `_batched` and share forward passes; a request alone here has nobody to wait for,
        so it skips the batch queue and its wait."""
        self._active += 1
        try:
            if self._active == 1:
                return await self._forward(images)
            return list(await asyncio.gather(*(self._batched(im) for im in images)))
        finally:
            self._active -= 1

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batched(self, images: list[np.ndarray]) -> list[float]:
        return await self._forward(images)

    async def _forward(self, images: list[np.ndarray]) -> list[float]:
        # In a worker thread: the event loop keeps taking requests (and filling the next
        # batch) during the forward pass.
        probs = await asyncio.get_running_loop().run_in_executor(
            None, self.predictor.predict_arrays, np.stack(images))
        return [float(p) for p in probs]

    def __del__(self):
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


def build_app(options: ServeOptions, max_replicas: int = 1,
              model_files: tuple[str, dict[str, bytes]] | None = None) -> serve.Application:
    """The application: the deployment, configured and bound to the model's files
    (`read_model_files(options.model)` unless given)."""
    name, files = model_files or read_model_files(options.model)
    return GenderApp.options(**options.deployment_options(max_replicas)).bind(
        name, files, asdict(options))


def build(args: dict) -> serve.Application:
    """The builder `serve.yaml` names (`import_path: serving.app:build`): its `args` are
    `ServeOptions` fields; the token comes from $GENDER_SERVE_TOKEN, never the file."""
    import os

    if "token" in args:
        raise UserError("serve.yaml: put the token in $GENDER_SERVE_TOKEN, not in args")
    known = set(ServeOptions.__dataclass_fields__)
    unknown = sorted(set(args) - known)
    if unknown:
        raise UserError(f"serve.yaml args: unknown {', '.join(unknown)} "
                        f"(known: {', '.join(sorted(known - {'token'}))})")
    return build_app(ServeOptions(**args, token=os.environ.get("GENDER_SERVE_TOKEN")))
