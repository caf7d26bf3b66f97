"""The page and the JSON API, as one FastAPI app over a backend.

Routes (everything under /api/ needs `Authorization: Bearer TOKEN` when a token is set;
`/`, its two static files, `/healthz` and `/openapi.json` reveal nothing and stay open):

- `GET /`: the page (HTML, CSS and JS from this package: no CDN, no external font);
- `POST /api/predict`: one image as the body -> {"label", "prob_male", "model"}; or
  several as multipart/form-data -> {"results": [{"filename", "label", "prob_male"} or
  {"filename", "error"}], "model"} (422 if none could be read);
- `GET /api/model`: the model's configuration, test metrics and provenance;
- `GET /healthz`: {"status": "ok"}; `GET /openapi.json`: the schema.

Every answer is JSON with an "error" message on failure, never a stack trace. A body over
`MAX_UPLOAD_BYTES` is refused with 413 from its Content-Length, or as soon as the stream
passes the limit, so it is never read whole. Pictures are decoded in a worker thread by
`gender.images` (the decoding of `gender predict`), so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Literal, Protocol

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from gender import __version__
from gender.constants import CONFIG_FILE, ENVIRONMENT_FILE, MAX_UPLOAD_BYTES, METRICS_FILE
from gender.errors import UserError
from gender.export import LoadedModel
from gender.images import ImageError, decode_image
from gender.io import plain, read_json
from gender.predict import Predictor, label_of

__all__ = ["Backend", "LocalBackend", "create_app", "model_info", "MAX_FILES"]

log = logging.getLogger("gender.web")

MAX_FILES = 32  # images in one multipart request
_STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "app.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
_FORMATS = "JPEG, PNG, WebP or BMP"
# The page runs only its own script and style; pictures are the user's own (blob: URLs).
_HEADERS = [(b"content-security-policy",
             b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
             b"connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"),
            (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]


class Backend(Protocol):
    """What the app needs from whoever runs the model."""

    info: dict  # GET /api/model
    image_size: int
    crop: float  # pictures are decoded as the model was trained: size and crop

    async def predict(self, images: list[np.ndarray]) -> list[float]:
        """uint8 3 x S x S pictures -> P(male) each."""


class LocalBackend:
    """A `Predictor` in this process, its forward passes in a worker thread."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.image_size, self.crop = predictor.image_size, predictor.model.crop
        self.info = model_info(predictor.model, predictor.engine, str(predictor.runtime.device))

    async def predict(self, images: list[np.ndarray]) -> list[float]:
        probs = await run_in_threadpool(self.predictor.predict_arrays, np.stack(images))
        return [float(p) for p in probs]


def _read_beside(loaded: LoadedModel, name: str) -> dict:
    path = loaded.path.with_name(name)
    try:
        return read_json(path) if path.is_file() else {}
    except UserError:
        return {}


def model_info(loaded: LoadedModel, engine: str, device: str) -> dict:
    """Which model answers: its configuration, test metrics (`metrics.json` beside it, else
    those saved in the model file) and provenance. No absolute path of this machine."""
    metrics = _read_beside(loaded, METRICS_FILE) or loaded.metrics
    folder = loaded.path.parent
    configs = [c.to_dict() for c in loaded.configs]
    return plain({
        "name": f"{folder.parent.name}/{folder.name}", "sha256": loaded.sha256,
        "trial_id": metrics.get("trial_id"), "test_accuracy": metrics.get("accuracy"),
        "test_f1": metrics.get("f1"), "image_size": loaded.image_size,
        "crop": loaded.crop, "members": len(configs), "tta_flip": loaded.module.tta_flip,
        "temperature": loaded.module.temperature, "engine": engine, "device": device,
        "config": _read_beside(loaded, CONFIG_FILE) or configs[0],
        "member_configs": configs, "metrics": metrics,
        "provenance": {"environment": _read_beside(loaded, ENVIRONMENT_FILE),
                       "data": metrics.get("data"),
                       "data_fingerprint": metrics.get("data_fingerprint"),
                       "preprocess": loaded.preprocess},
    })


# -- response shapes (for the OpenAPI schema) -----------------------------------------------

class ModelRef(BaseModel):
    id: str  # the first 12 hex digits of model.pt's SHA-256
    trial_id: str | None = None
    test_accuracy: float | None = None


class Prediction(BaseModel):
    label: Literal["female", "male"]
    prob_male: float
    model: ModelRef


class FileResult(BaseModel):
    filename: str
    label: Literal["female", "male"] | None = None
    prob_male: float | None = None
    error: str | None = None


class Batch(BaseModel):
    results: list[FileResult]
    model: ModelRef


class Error(BaseModel):
    error: str


_ERRORS = {s: {"model": Error, "description": d} for s, d in (
    (400, "empty or malformed body"), (401, "missing or wrong bearer token"),
    (413, f"body over {MAX_UPLOAD_BYTES // 2**20} MB"),
    (422, "not an image, corrupt, or too many pixels"))}
_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "image/*": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {"files": {
        "type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}


# -- helpers --------------------------------------------------------------------------------

def _too_large() -> HTTPException:
    return HTTPException(413, f"upload over the limit of {MAX_UPLOAD_BYTES // 2**20} MB "
                              f"({MAX_UPLOAD_BYTES:,} bytes)")


async def _capped(request: Request) -> AsyncIterator[bytes]:
    """The body, chunk by chunk, refused (413) once it passes the limit or says it will."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > MAX_UPLOAD_BYTES:
            raise _too_large()
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > MAX_UPLOAD_BYTES:
            raise _too_large()
        yield chunk


def _timing(**ms: float) -> dict:
    """A Server-Timing header (browsers' dev tools and the serve benchmark read it)."""
    return {"server-timing": ", ".join(f"{k};dur={v:.2f}" for k, v in ms.items())}


class _SecurityHeaders:
    """Adds `_HEADERS` to every response (pure ASGI: no per-request task or copy)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- the app --------------------------------------------------------------------------------

def create_app(backend: Backend, token: str | None = None) -> FastAPI:
    """The page and the API over `backend`; with `token`, every /api/ call needs it."""
    app = FastAPI(title="gender-tune", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="Face gender classifier: a page at / and this JSON API.")
    app.add_middleware(_SecurityHeaders)
    static = files("gender.web") / "static"
    pages = {name: (static / name).read_bytes() for name in _STATIC}
    expected = token.encode() if token else None
    info = backend.info
    ref = {"id": info["sha256"][:12], "trial_id": info.get("trial_id"),
           "test_accuracy": info.get("test_accuracy")}
    size, crop = backend.image_size, backend.crop

    def authorize(request: Request) -> None:
        if expected is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        # compare_digest: the time taken does not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                  expected):
            raise HTTPException(401, "missing or wrong token: send the header "
                                     "'Authorization: Bearer <token>'",
                                headers={"www-authenticate": "Bearer"})

    def decode(data: bytes) -> np.ndarray:
        if not data:
            raise ImageError("empty file")
        return decode_image(data, size, crop)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError):
        return JSONResponse({"error": f"cannot read image: {exc}"}, 422)

    @app.exception_handler(MultiPartException)
    async def multipart_error(request: Request, exc: MultiPartException):
        return JSONResponse({"error": f"malformed multipart body: {exc.message}"}, 400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error (the server's log has the details)"},
                            500)

    def page(name: str):
        return lambda: Response(pages[name], media_type=_STATIC[name],
                                headers={"cache-control": "no-cache"})

    for name in _STATIC:
        app.get("/" if name == "index.html" else f"/static/{name}",
                include_in_schema=False)(page(name))

    @app.get("/healthz", summary="Liveness: the app is up and its model loaded")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/api/model", summary="The model answering: configuration, test metrics, "
                                   "provenance", responses={401: _ERRORS[401]})
    async def get_model(request: Request) -> dict:
        authorize(request)
        return info

    @app.post("/api/predict", response_model=Prediction | Batch, responses=_ERRORS,
              openapi_extra=_PREDICT_BODY,
              summary="Label one image (the body) or several (multipart/form-data)")
    async def post_predict(request: Request):
        t0 = time.perf_counter()
        authorize(request)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await _predict_many(request, t0)
        body = bytearray()
        async for chunk in _capped(request):
            body += chunk
        if not body:
            raise HTTPException(400, f"empty body: send one image ({_FORMATS}) as the body, "
                                     "or several as multipart/form-data")
        t1 = time.perf_counter()
        image = await run_in_threadpool(decode, bytes(body))
        t2 = time.perf_counter()
        (p,) = await backend.predict([image])
        t3 = time.perf_counter()
        return JSONResponse({**label_of(p), "model": ref}, headers=_timing(
            read=(t1 - t0) * 1e3, decode=(t2 - t1) * 1e3, infer=(t3 - t2) * 1e3,
            app=(t3 - t0) * 1e3))

    async def _predict_many(request: Request, t0: float) -> JSONResponse:
        parser = MultiPartParser(request.headers, _capped(request), max_files=MAX_FILES,
                                 max_fields=MAX_FILES)
        form = await parser.parse()
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise HTTPException(400, "multipart body without a file part: send each image "
                                     "as a file")
        t1 = time.perf_counter()

        async def one(upload: UploadFile):
            try:
                return await run_in_threadpool(decode, await upload.read())
            except ImageError as e:
                return f"cannot read image: {e}"
            finally:
                await upload.close()

        decoded = await asyncio.gather(*(one(u) for u in uploads))
        t2 = time.perf_counter()
        good = [d for d in decoded if isinstance(d, np.ndarray)]
        probs = iter(await backend.predict(good) if good else [])
        t3 = time.perf_counter()
        results = [{"filename": u.filename or "", **(
            {"error": d} if isinstance(d, str) else label_of(next(probs)))}
            for u, d in zip(uploads, decoded, strict=True)]
        status = 200 if good else 422
        return JSONResponse({"results": results, "model": ref}, status, headers=_timing(
            read=(t1 - t0) * 1e3, decode=(t2 - t1) * 1e3, infer=(t3 - t2) * 1e3,
            app=(t3 - t0) * 1e3))

    return app
