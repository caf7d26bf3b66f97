"""The one hyperparameter record: `TrainConfig`.

Every caller (`gender train`, each Ray trial, the final retrain) builds one of these; it is
validated on creation and saved into every checkpoint, `config.json` and exported model,
so a model file alone says how to rebuild and preprocess for it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from gender.errors import ConfigError

__all__ = ["TrainConfig", "ARCHS", "HEADS", "OPTIMIZERS", "SCHEDULES", "BALANCE"]

ARCHS = ("vgg11", "vgg13", "vgg16", "vgg19")
HEADS = ("classic", "gap")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("cosine", "constant", "step")
BALANCE = ("weighted", "undersample", "none")


def _check(ok: bool, rule: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config: must be {rule}")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run. Fields are plain JSON types."""

    arch: str = "vgg11"  # depth: vgg11 | vgg13 | vgg16 | vgg19
    batch_norm: bool = True  # the *_bn variants
    width: float = 0.25  # channel multiplier on torchvision's layer lists (1.0 = original)
    head: str = "gap"  # "classic" (4096-4096 MLP, torchvision layout) or "gap" (pool + small MLP)
    dropout: float = 0.2
    optimizer: str = "adamw"
    lr: float = 2e-3
    momentum: float = 0.9  # sgd, rmsprop only
    alpha: float = 0.99  # rmsprop smoothing only
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"
    batch_size: int = 64
    image_size: int = 64
    augment: float = 0.5  # 0 = none, 1 = strong flip/affine/colour jitter
    mixup: float = 0.0  # Beta(a, a) of mixup's blend weight; 0 = off
    # Decay per step of an exponential moving average of the weights (0 = off). It does not
    # raise the peak on CelebA but smooths the validation curve, which ASHA's cuts and the
    # retrain's "epoch of the peak" both read.
    ema: float = 0.99
    epochs: int = 10
    balance: str = "weighted"  # class imbalance: weighted loss, undersample train, or none
    seed: int = 0
    pretrained: str | None = field(default=None)  # path to ImageNet weights (width 1, classic)

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, f"arch in {ARCHS}, got {self.arch!r}")
        _check(self.head in HEADS, f"head in {HEADS}, got {self.head!r}")
        _check(self.optimizer in OPTIMIZERS, f"optimizer in {OPTIMIZERS}, got {self.optimizer!r}")
        _check(self.lr_schedule in SCHEDULES, f"lr_schedule in {SCHEDULES}")
        _check(self.balance in BALANCE, f"balance in {BALANCE}, got {self.balance!r}")
        _check(isinstance(self.batch_norm, bool), "batch_norm a bool")
        _check(0.0625 <= self.width <= 2.0, f"0.0625 <= width <= 2, got {self.width}")
        _check(0.0 <= self.dropout < 1.0, f"0 <= dropout < 1, got {self.dropout}")
        _check(math.isfinite(self.lr) and 0 < self.lr <= 10, f"0 < lr <= 10, got {self.lr}")
        _check(0.0 <= self.momentum < 1.0, f"0 <= momentum < 1, got {self.momentum}")
        _check(0.0 < self.alpha < 1.0, f"0 < alpha < 1, got {self.alpha}")
        _check(0.0 <= self.weight_decay < 1.0, f"0 <= weight_decay < 1, got {self.weight_decay}")
        _check(1 <= self.batch_size <= 4096, f"1 <= batch_size <= 4096, got {self.batch_size}")
        # VGG halves the resolution five times; below 32 px the last blocks see 1x1 maps.
        _check(32 <= self.image_size <= 512 and self.image_size % 32 == 0,
               f"image_size a multiple of 32 in [32, 512], got {self.image_size}")
        _check(0.0 <= self.augment <= 1.0, f"0 <= augment <= 1, got {self.augment}")
        _check(0.0 <= self.mixup <= 10.0, f"0 <= mixup <= 10, got {self.mixup}")
        _check(0.0 <= self.ema < 1.0, f"0 <= ema < 1, got {self.ema}")
        _check(1 <= self.epochs <= 1000, f"1 <= epochs <= 1000, got {self.epochs}")
        if self.pretrained is not None:
            _check(self.width == 1.0 and self.head == "classic",
                   "width 1.0 and head 'classic' to load pretrained ImageNet weights")

    @property
    def model_name(self) -> str:
        return self.arch + ("_bn" if self.batch_norm else "")

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
        return cls(**{k: v.item() if hasattr(v, "item") else v for k, v in d.items()})

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)
