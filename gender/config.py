"""The one hyperparameter record: `TrainConfig`.

Every caller (`gender train`, each Ray trial, the final retrain) builds one of these; it is
validated on creation and saved into every checkpoint, `config.json` and exported model,
so a model file alone says how to rebuild and preprocess for it. Each field's `help` is
its documentation and the text of its command-line flag: adding a hyperparameter is one
edit here (the flags, the search space's validation and the files follow).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from gender.errors import ConfigError

__all__ = ["TrainConfig", "UNSAVED_DEFAULTS", "ARCHS", "HEADS", "OPTIMIZERS", "SCHEDULES",
           "BALANCE"]

ARCHS = ("vgg11", "vgg13", "vgg16", "vgg19")
HEADS = ("classic", "gap")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("cosine", "constant", "step")
BALANCE = ("weighted", "undersample", "none")


# What a configuration written before a field existed meant: every model was trained on
# the whole square before `crop`. Read by `TrainConfig.from_saved` and by the tuner for a
# space or an experiment that has no crop entry.
UNSAVED_DEFAULTS = {"crop": 1.0}


def _f(default, help: str, choices: tuple | None = None):  # noqa: A002 - argparse's word
    return field(default=default, metadata={"help": help, "choices": choices})


def _check(ok: bool, name: str, rule: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config: {name} must be {rule}", field=name, rule=rule)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run. Fields are plain JSON types."""

    arch: str = _f("vgg11", "depth: torchvision's VGG layer list", ARCHS)
    batch_norm: bool = _f(True, "batch norm after every convolution (the *_bn variants)")
    width: float = _f(0.25, "channel multiplier on torchvision's layer lists (1.0 = original)")
    head: str = _f("gap", "classifier: 'gap' (global average pool + small MLP) or 'classic' "
                          "(torchvision's 4096-4096 MLP, scaled by width)", HEADS)
    dropout: float = _f(0.2, "dropout in the classifier head")
    optimizer: str = _f("adamw", "optimiser", OPTIMIZERS)
    lr: float = _f(2e-3, "peak learning rate")
    momentum: float = _f(0.9, "momentum (sgd, rmsprop only)")
    alpha: float = _f(0.99, "RMSprop's smoothing constant (rmsprop only)")
    weight_decay: float = _f(5e-4, "L2 / decoupled weight decay")
    lr_schedule: str = _f("cosine", "learning rate over the run, after a short warm-up",
                          SCHEDULES)
    batch_size: int = _f(64, "images a step")
    image_size: int = _f(64, "pixels a side, a multiple of 32")
    crop: float = _f(0.7, "the central square kept, as a fraction of the picture's shorter "
                          "side, before resizing to image_size (1.0 = the whole square)")
    augment: float = _f(0.5, "augmentation strength: flip, affine, colour jitter (0 = none)")
    mixup: float = _f(0.0, "mixup's Beta(a, a) parameter, e.g. 0.2 (0 = off)")
    # Smooths the validation curve that ASHA's cuts and the retrain's peak epoch read.
    ema: float = _f(0.99, "decay per step of a moving average of the weights, which is "
                          "evaluated and exported (0 = off)")
    epochs: int = _f(10, "epochs; the learning-rate schedule spans them")
    balance: str = _f("weighted", "class imbalance: weighted loss, undersample the majority "
                                  "class of the training rows, or none", BALANCE)
    seed: int = _f(0, "seed of initialisation, batch order and augmentation")
    pretrained: str | None = _f(None, "'imagenet' (torchvision's weights, from its cache) or "
                                      "a weights file; needs width 1 and the classic head")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices:
                _check(getattr(self, f.name) in choices, f.name,
                       f"one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        for name, kind in (("width", float), ("dropout", float), ("lr", float),
                           ("momentum", float), ("alpha", float), ("weight_decay", float),
                           ("augment", float), ("mixup", float), ("crop", float), ("ema", float),
                           ("batch_size", int), ("image_size", int), ("epochs", int),
                           ("seed", int)):
            v = getattr(self, name)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool)
                  and (kind is float or float(v).is_integer()))
            _check(ok, name, f"{'a number' if kind is float else 'a whole number'}, got {v!r}")
        _check(isinstance(self.batch_norm, bool), "batch_norm", "true or false")
        _check(0.0625 <= self.width <= 2.0, "width", f"in [0.0625, 2], got {self.width}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"in [0, 1), got {self.dropout}")
        _check(math.isfinite(self.lr) and 0 < self.lr <= 10, "lr",
               f"in (0, 10], got {self.lr}")
        _check(0.0 <= self.momentum < 1.0, "momentum", f"in [0, 1), got {self.momentum}")
        _check(0.0 < self.alpha < 1.0, "alpha", f"in (0, 1), got {self.alpha}")
        _check(0.0 <= self.weight_decay < 1.0, "weight_decay",
               f"in [0, 1), got {self.weight_decay}")
        _check(1 <= self.batch_size <= 4096, "batch_size",
               f"in [1, 4096], got {self.batch_size}")
        # Training skips a batch of one under batch norm: every step would be skipped and
        # an untrained model saved. Refused here, before any data is read.
        _check(self.batch_size >= 2 or not self.batch_norm, "batch_size",
               "at least 2 with batch norm (it cannot normalise a batch of one image); "
               "use a larger --batch-size or --no-batch-norm")
        # VGG halves the resolution five times; below 32 px the last blocks see 1x1 maps.
        _check(32 <= self.image_size <= 512 and self.image_size % 32 == 0, "image_size",
               f"a multiple of 32 in [32, 512], got {self.image_size}")
        _check(0.5 <= self.crop <= 1.0, "crop", f"in [0.5, 1], got {self.crop}")
        _check(0.0 <= self.augment <= 1.0, "augment", f"in [0, 1], got {self.augment}")
        _check(0.0 <= self.mixup <= 10.0, "mixup", f"in [0, 10], got {self.mixup}")
        _check(0.0 <= self.ema < 1.0, "ema", f"in [0, 1), got {self.ema}")
        _check(1 <= self.epochs <= 1000, "epochs", f"in [1, 1000], got {self.epochs}")
        _check(0 <= self.seed < 2**32, "seed", f"in [0, 2**32), got {self.seed}")
        if self.pretrained is not None:
            _check(self.width == 1.0 and self.head == "classic", "pretrained",
                   "used with width 1.0 and head 'classic' (ImageNet weights' shapes)")

    @property
    def model_name(self) -> str:
        return self.arch + ("_bn" if self.batch_norm else "")

    @property
    def input_view(self) -> tuple[int, float]:
        """(image_size, crop): how a picture is decoded for this model."""
        return self.image_size, self.crop

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a dict, refusing unknown keys so a typo never passes silently."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"invalid config: unknown field(s) {', '.join(unknown)}")
        # numpy scalars (from pandas or Optuna) -> plain Python, so files stay weights_only-safe.
        plain = {k: v.item() if hasattr(v, "item") else v for k, v in d.items()}
        for f in dataclasses.fields(cls):  # 64.0 from a CSV or JSON is the int 64
            v = plain.get(f.name)
            if f.type == "int" and isinstance(v, float) and v.is_integer():
                plain[f.name] = int(v)
        return cls(**plain)

    @classmethod
    def from_saved(cls, d: dict) -> TrainConfig:
        """`from_dict` for what a file or a search wrote, perhaps before a field existed
        (`UNSAVED_DEFAULTS`)."""
        return cls.from_dict({**UNSAVED_DEFAULTS, **d})

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def help(cls, name: str) -> str:
        return cls.__dataclass_fields__[name].metadata.get("help", "")
