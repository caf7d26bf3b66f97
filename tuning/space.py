"""The search space: Optuna define-by-run, so a parameter exists only where it applies
(momentum for sgd/rmsprop, alpha for rmsprop).

Every sampled name is a `TrainConfig` field; `--space FILE` (YAML or JSON) overrides any
of them with `{choices: [...]}`, `{low:, high:, log:}` or a constant.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from gender.config import ARCHS, HEADS, OPTIMIZERS, TrainConfig
from gender.errors import ConfigError, UserError
from gender.io import read_text

__all__ = ["DEFAULT_SPACE", "QUICK_SPACE", "load_space", "validate_space", "define_by_run",
           "NOTEBOOK_GRID", "trial_config", "widen_for", "default_point"]

# Defaults sized for CPUs and small GPUs; widen width/image_size with --space on big GPUs.
DEFAULT_SPACE: dict[str, Any] = {
    "arch": {"choices": list(ARCHS)},
    "batch_norm": {"choices": [True, False]},
    "width": {"choices": [0.125, 0.25, 0.5]},
    "head": {"choices": list(HEADS)},
    "optimizer": {"choices": list(OPTIMIZERS)},
    "lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "momentum": {"low": 0.5, "high": 0.99},  # sgd, rmsprop
    "alpha": {"low": 0.5, "high": 0.99},  # rmsprop
    "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "batch_size": {"choices": [32, 64, 128]},
    "dropout": {"low": 0.0, "high": 0.5},
    "image_size": {"choices": [64, 96]},
    # The package's crop only: every crop listed is decoded and held once per image size.
    "crop": {"choices": [TrainConfig().crop]},
    "augment": {"low": 0.0, "high": 1.0},
}

# `--quick`: the same space, narrowed to what trains in seconds on two CPU cores.
QUICK_SPACE: dict[str, Any] = {
    **DEFAULT_SPACE,
    "arch": {"choices": ["vgg11", "vgg13"]},
    "width": {"choices": [0.125]},
    "head": {"choices": ["gap"]},
    "batch_size": {"choices": [64, 128]},
    "image_size": {"choices": [32]},
    # The whole square: at 32 px a tighter crop learns slower in runs this short.
    "crop": {"choices": [1.0]},
}

CONDITIONAL = {"momentum": ("sgd", "rmsprop"), "alpha": ("rmsprop",)}
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
SEARCHABLE = [n for n in DEFAULT_SPACE]

# The original notebook's 12 hand-picked runs: VGG16/19 x Adam/RMSprop x lr 1e-4/5e-5,
# and alpha 0.5/0.9 for RMSprop. Plain VGG (no batch norm) with the classic head.
NOTEBOOK_GRID: list[dict] = [
    {"arch": a, "batch_norm": False, "head": "classic", "optimizer": o, "lr": lr,
     **({"alpha": al, "momentum": 0.0} if o == "rmsprop" else {})}
    for a in ("vgg16", "vgg19") for o in ("adam", "rmsprop") for lr in (1e-4, 5e-5)
    for al in ((0.5, 0.9) if o == "rmsprop" else (None,))
]


def _err(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def validate_space(space: dict, where: str = "search space") -> dict:
    """Check every entry against TrainConfig's rules; return the normalised space."""
    out = {}
    for name, spec in space.items():
        if name not in _FIELDS or name in ("epochs", "seed", "pretrained"):
            raise _err(where, f"unknown parameter {name!r} (searchable: {', '.join(SEARCHABLE)})")
        if isinstance(spec, dict) and "choices" in spec:
            values = spec["choices"]
            if not isinstance(values, list) or not values:
                raise _err(where, f"{name}.choices must be a non-empty list")
            for v in values:
                _check_value(name, v, where)
            out[name] = {"choices": list(values)}
        elif isinstance(spec, dict) and {"low", "high"} <= set(spec):
            lo, hi, log = spec["low"], spec["high"], bool(spec.get("log", False))
            if set(spec) - {"low", "high", "log"}:
                raise _err(where, f"{name}: only low, high, log are allowed in a range")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
                raise _err(where, f"{name}: low and high must be numbers")
            if not lo < hi:
                raise _err(where, f"{name}: must be low < high, got {lo} >= {hi}")
            if log and lo <= 0:
                raise _err(where, f"{name}: a log range must have low > 0")
            if _FIELDS[name].type in ("int", int) or name in ("batch_size", "image_size"):
                raise _err(where, f"{name}: use choices, not a range")
            if name == "crop":
                raise _err(where, "crop: use choices, not a range (the data is decoded "
                                  "once for each crop)")
            _check_value(name, lo, where)
            _check_value(name, hi, where)
            out[name] = {"low": float(lo), "high": float(hi), "log": log}
        elif isinstance(spec, dict):
            raise _err(where, f"{name}: expected {{choices: [...]}} or {{low:, high:}}")
        else:
            _check_value(name, spec, where)
            out[name] = {"choices": [spec]}
    return out


def _check_value(name: str, value: Any, where: str) -> None:
    try:
        TrainConfig(**{name: value})
    except (ConfigError, TypeError) as e:
        raise _err(where, f"{name}={value!r} is not allowed ({e})") from None
    except Exception as e:  # comparisons of wrong types, e.g. a string lr
        raise _err(where, f"{name}={value!r} is not allowed ({type(e).__name__})") from None


def load_space(path: str | Path | None, base: dict | None = None) -> dict:
    """The default space with a file's entries laid over it."""
    space = dict(base or DEFAULT_SPACE)
    if path is None:
        return validate_space(space)
    p = Path(path)
    try:
        text = read_text(p, "search space file (YAML or JSON)")
    except UserError as e:
        raise UserError(f"--space {e}") from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(f"--space {p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: "
                        f"{str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"--space {p}: expected a mapping of parameter names")
    space.update(validate_space(data, where=f"--space {p}"))
    return validate_space(space)


class define_by_run:  # noqa: N801 - used like a function; a class so Ray can pickle it
    """Optuna calls this per trial to sample; it returns the constants (epochs, seed)."""

    def __init__(self, space: dict, constants: dict):
        self.space, self.constants = space, constants

    def __call__(self, trial) -> dict:
        values = {}
        for name, spec in self.space.items():
            if name in CONDITIONAL and values.get("optimizer") not in CONDITIONAL[name]:
                continue  # the parameter does not apply: it is not sampled at all
            if "choices" in spec:
                values[name] = trial.suggest_categorical(name, spec["choices"])
            else:
                values[name] = trial.suggest_float(name, spec["low"], spec["high"],
                                                   log=spec["log"])
        return dict(self.constants)


def widen_for(space: dict, points: list[dict]) -> dict:
    """Add the categorical values of enqueued configurations to the space (Optuna refuses a
    fixed categorical value outside its choices; numbers outside a range only warn)."""
    out = {k: dict(v) for k, v in space.items()}
    for point in points:
        for name, value in point.items():
            spec = out.get(name)
            if spec is None:
                raise ConfigError(f"enqueued configuration: {name!r} is not a search parameter")
            if "choices" in spec and value not in spec["choices"]:
                _check_value(name, value, "enqueued configuration")
                spec["choices"] = [*spec["choices"], value]
    return out


def default_point(space: dict) -> dict:
    """The package's default configuration, restricted to what the space can express: a
    known-sane first trial that TPE then has to beat."""
    d = TrainConfig().to_dict()
    point = {}
    for name, spec in space.items():
        if name in CONDITIONAL and d["optimizer"] not in CONDITIONAL[name]:
            continue
        if "choices" in spec and d[name] not in spec["choices"]:
            continue  # the space rules the default out: let the sampler choose
        if "low" in spec and not spec["low"] <= d[name] <= spec["high"]:
            continue
        point[name] = d[name]
    return point


def trial_config(params: dict) -> TrainConfig:
    """Ray's flat trial config -> TrainConfig (parameters that do not apply take defaults)."""
    return TrainConfig.from_saved({k: v for k, v in params.items() if k in _FIELDS})
