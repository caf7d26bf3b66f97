"""Model files: `model.pt` holds one model or an ensemble, with everything needed to use it.

A `model.pt` is a dict of tensors and plain Python types, so it loads with
`torch.load(weights_only=True)`: a crafted pickle is refused, never run. It holds:

- `members`: one or more `{"config": TrainConfig dict, "state_dict": ...}`; all members
  share one image size, so one decoded picture feeds them all;
- `tta_flip`: whether each member also sees the horizontally flipped picture;
- `temperature`: calibration, applied to the logit of the members' mean probability;
- `preprocess`, `classes`, `metrics`.

`Deployable` is that whole recipe as one module: uint8 N x 3 x S x S RGB in, P(male) out,
normalisation included. `gender predict`, the web app and every exported graph run it.

`model.onnx` is that module as one ONNX graph (members, flip, temperature, normalisation),
for ONNX Runtime here or any other runtime elsewhere. It records the SHA-256 of the
`model.pt` it came from, so a stale graph beside a newer `model.pt` is never used.
"""

from __future__ import annotations

import copy
import hashlib
import io
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from gender.augment import MEAN, STD
from gender.config import TrainConfig
from gender.constants import CLASSES, ONNX_FILE
from gender.errors import ConfigError, UserError
from gender.images import PREPROCESS
from gender.io import atomic_path, resolve_model_path
from gender.models import VGG, build_model

__all__ = ["Deployable", "LoadedModel", "save_model", "load_model",
           "FORMAT", "export_onnx", "onnx_session", "file_sha256"]

FORMAT = "gender-tune/model/2"
_FORMAT_1 = "gender-tune/model/1"  # one model: "config" + "state_dict" at the top level


class Deployable(nn.Module):
    """uint8 N x 3 x S x S (RGB, centre square, resized) -> P(male), N floats.

    Each member's probability (and, with `tta_flip`, that of the mirrored picture) is
    averaged; a `temperature` other than 1 then rescales the logit of that mean.
    """

    def __init__(self, members: list[VGG], tta_flip: bool = False, temperature: float = 1.0,
                 channels_last: bool = False):
        super().__init__()
        if not members:
            raise ValueError("a Deployable needs at least one member")
        self.members = nn.ModuleList(members)
        self.tta_flip = bool(tta_flip)
        self.temperature = float(temperature)
        self.channels_last = channels_last
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() / 255.0 - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        views = [x, torch.flip(x, dims=[3])] if self.tta_flip else [x]
        probs = [torch.sigmoid(m(v).float()) for m in self.members for v in views]
        p = probs[0] if len(probs) == 1 else torch.stack(probs).mean(dim=0)
        if self.temperature != 1.0:
            # logit(p) / T, written with logs so every exporter knows the operations.
            q = p.clamp(1e-7, 1 - 1e-7)
            p = torch.sigmoid((torch.log(q) - torch.log1p(-q)) / self.temperature)
        return p


@dataclass
class LoadedModel:
    """What a `model.pt` holds, rebuilt: the module (eval mode, CPU) and its facts."""

    path: Path
    module: Deployable
    configs: list[TrainConfig]
    metrics: dict = field(default_factory=dict)
    preprocess: dict = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        """The first member's configuration (the best trial's, for an ensemble)."""
        return self.configs[0]

    @property
    def image_size(self) -> int:
        return self.configs[0].image_size

    @property
    def crop(self) -> float:
        """The fraction of a picture's shorter side its central square keeps."""
        return self.configs[0].crop

    @property
    def members(self) -> list[VGG]:
        return list(self.module.members)

    @property
    def sha256(self) -> str:
        return file_sha256(self.path)


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_model(path: str | Path, models: VGG | list[VGG], configs: TrainConfig | list[TrainConfig],
               metrics: dict | None = None, *, tta_flip: bool = False,
               temperature: float = 1.0) -> Path:
    """Write `model.pt` atomically (a crash never leaves a truncated model behind)."""
    models = models if isinstance(models, list) else [models]
    configs = configs if isinstance(configs, list) else [configs]
    if len(models) != len(configs) or not models:
        raise ValueError("save_model: one configuration per member, at least one member")
    if len({c.input_view for c in configs}) != 1:
        raise ConfigError("an ensemble's members must share one image size and crop")
    path = Path(path)
    blob = {
        "format": FORMAT,
        "members": [{"config": c.to_dict(), "state_dict": _cpu_state(m)}
                    for m, c in zip(models, configs, strict=True)],
        "tta_flip": bool(tta_flip), "temperature": float(temperature),
        "preprocess": {**PREPROCESS, "image_size": configs[0].image_size,
                       "crop_fraction": configs[0].crop, "mean": list(MEAN), "std": list(STD)},
        "classes": list(CLASSES), "metrics": metrics or {},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    return path


def _read_blob(p: Path) -> dict:
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive (or, long ago, a pickle): anything else is not a model,
    # and torch would blame the unpickler for it.
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise UserError(f"{p}: not a readable model file (not a file torch.save wrote)")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise UserError(f"{p}: refused to load: not a plain weights file "
                        f"(weights_only=True rejected it: {first[:200]})") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{p}: not a readable model file ({first[:200]})") from None
    if not isinstance(blob, dict) or blob.get("format") not in (FORMAT, _FORMAT_1):
        raise UserError(f"{p}: not a gender-tune model file (format {FORMAT} expected)")
    if blob["format"] == _FORMAT_1:
        blob = {**blob, "members": [{"config": blob.get("config"),
                                     "state_dict": blob.get("state_dict")}]}
    return blob


def _member(p: Path, i: int, member) -> tuple[VGG, TrainConfig]:
    where = f"{p}: member {i}" if i else str(p)
    if not isinstance(member, dict) or not isinstance(member.get("config"), dict) \
            or not isinstance(member.get("state_dict"), dict):
        raise UserError(f"{where}: expected a config and a state_dict")
    try:
        cfg = TrainConfig.from_saved({**member["config"], "pretrained": None})
    except (ConfigError, TypeError) as e:
        raise UserError(f"{where}: its saved configuration is invalid ({e})") from None
    model = build_model(cfg)
    try:
        model.load_state_dict(member["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        # torch lists every missing key and mismatched shape on lines of their own.
        lines = [ln.strip() for ln in str(e).strip().splitlines()[1:] if ln.strip()]
        detail = "; ".join(lines) or str(e)
        raise UserError(f"{where}: the weights do not fit its configuration "
                        f"({cfg.model_name}, width {cfg.width}, head {cfg.head}): "
                        f"{detail[:200]}") from None
    return model.eval(), cfg


def load_model(path: str | Path) -> LoadedModel:
    """Rebuild the model a `model.pt` (or a folder holding one) describes, on the CPU."""
    p = resolve_model_path(path)
    blob = _read_blob(p)
    members = blob["members"]
    if not isinstance(members, list) or not members:
        raise UserError(f"{p}: holds no model (empty members)")
    built = [_member(p, i, m) for i, m in enumerate(members)]
    configs = [c for _, c in built]
    if len({c.input_view for c in configs}) != 1:
        raise UserError(f"{p}: members disagree on the image size or crop")
    temperature = blob.get("temperature", 1.0)
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise UserError(f"{p}: temperature must be a positive number, got {temperature!r}")
    module = Deployable([m for m, _ in built], tta_flip=bool(blob.get("tta_flip", False)),
                        temperature=float(temperature)).eval()
    metrics = blob.get("metrics") if isinstance(blob.get("metrics"), dict) else {}
    preprocess = blob.get("preprocess") if isinstance(blob.get("preprocess"), dict) else {}
    return LoadedModel(p, module, configs, metrics, preprocess)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_SHA_KEY = "gender_tune_model_sha256"  # ONNX metadata: the model.pt a graph came from


def _pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """n_out x n_in: row i averages the inputs adaptive average pooling gives output i
    (from floor(i * n_in / n_out) to ceil((i + 1) * n_in / n_out))."""
    m = torch.zeros(n_out, n_in)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -(-(i + 1) * n_in // n_out)
        m[i, a:b] = 1.0 / (b - a)
    return m


class _PoolAsMatmul(nn.Module):
    """`AdaptiveAvgPool2d` for one input size, as two fixed matrix products. The ONNX
    exporter knows adaptive pooling only where the output size divides the input's, and
    the classic head pools every map to 7 x 7 (1 x 1 at 32 px, 3 x 3 at 96)."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]):
        super().__init__()
        self.register_buffer("rows", _pool_matrix(in_hw[0], out_hw[0]))
        self.register_buffer("cols", _pool_matrix(in_hw[1], out_hw[1]).T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, x), self.cols)


def _exportable(member: VGG, image_size: int) -> VGG:
    """The member, or a copy whose pooling the exporter can write (same outputs)."""
    out = member.avgpool.output_size
    out_hw = (out, out) if isinstance(out, int) else tuple(out)
    with torch.no_grad():
        in_hw = tuple(member.features(torch.zeros(1, 3, image_size, image_size)).shape[-2:])
    if all(o == 1 or i % o == 0 for i, o in zip(in_hw, out_hw, strict=True)):
        return member
    clone = copy.deepcopy(member)
    clone.avgpool = _PoolAsMatmul(in_hw, out_hw)
    return clone.eval()


def _onnx_bytes(loaded: LoadedModel) -> bytes:
    """The whole `Deployable` as one ONNX graph, batch size free."""
    import onnx

    s = loaded.image_size
    example = torch.zeros(2, 3, s, s, dtype=torch.uint8)
    buf = io.BytesIO()
    module = Deployable([_exportable(m, s) for m in loaded.members], loaded.module.tta_flip,
                        loaded.module.temperature).eval()
    with warnings.catch_warnings():
        # The legacy (TorchScript-based) exporter: torch.export's is many times slower for
        # these models, and every run's finish (and every test that trains) exports one.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=["images"],
                          output_names=["prob_male"], dynamo=False, opset_version=17,
                          dynamic_axes={"images": {0: "n"}, "prob_male": {0: "n"}})
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in ((_SHA_KEY, loaded.sha256), ("image_size", str(s)),
                       ("crop", f"{loaded.crop:g}"),
                       ("input", "uint8 N x 3 x S x S RGB: the centre square of side crop x "
                                 "the shorter side, resized to S"),
                       ("output", "P(male), N floats")):
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def _session(data: bytes, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # The same thread count as torch (Ray sets it to a replica's CPUs), one op at a time.
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def export_onnx(loaded: LoadedModel, path: str | Path | None = None,
                check: torch.Tensor | None = None, atol: float = 1e-4) -> Path:
    """Write `model.onnx` beside the model (or at `path`), then load it in ONNX Runtime and,
    given `check` (uint8 images), require P(male) within `atol` of eager PyTorch."""
    path = Path(path) if path else loaded.path.with_name(ONNX_FILE)
    data = _onnx_bytes(loaded)
    sess = _session(data, None)
    if check is not None and len(check):
        with torch.inference_mode():
            want = loaded.module(check).numpy()
        got = sess.run(None, {"images": check.numpy()})[0]
        diff = float(abs(got - want).max())
        if not diff <= atol:
            raise RuntimeError(f"{path}: ONNX Runtime differs from PyTorch by {diff:.2e} "
                               f"(> {atol:g}) on P(male)")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def onnx_session(loaded: LoadedModel, threads: int | None = None):
    """An ONNX Runtime session (CPU) for this model: `model.onnx` beside it when it was
    exported from this very `model.pt`, else a graph exported now, in memory."""
    onnx_path = loaded.path.with_name(ONNX_FILE)
    if onnx_path.is_file():
        try:
            sess = _session(onnx_path.read_bytes(), threads)
        except Exception:  # unreadable or foreign: export afresh below
            sess = None
        if sess is not None and \
                sess.get_modelmeta().custom_metadata_map.get(_SHA_KEY) == loaded.sha256:
            return sess
    return _session(_onnx_bytes(loaded), threads)
