"""The VGG zoo: torchvision's own layer lists, plus a width multiplier and a head choice.

Architectures are data (`torchvision.models.vgg.cfgs`); `build_model` is the one builder.
At width 1.0 with the classic head, parameter names and shapes equal torchvision's
`vgg11`..`vgg19(_bn)` except the last layer (1 logit instead of 1000 classes), so ImageNet
weights load through `load_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from gender.config import TrainConfig
from gender.errors import UserError

__all__ = ["VGG", "build_model", "load_pretrained", "LAYER_CFGS"]

# vgg11 -> "A", vgg13 -> "B", vgg16 -> "D", vgg19 -> "E" in torchvision's table.
LAYER_CFGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}


def _scaled(cfg: list, width: float) -> list:
    return [v if v == "M" else max(8, int(round(v * width))) for v in cfg]


class VGG(nn.Module):
    """`features` -> `avgpool` -> `classifier`, one logit (male) out.

    Same attribute names as torchvision's VGG so state dicts line up.
    """

    def __init__(self, cfg: TrainConfig):
        super().__init__()
        layers = _scaled(tv_vgg.cfgs[LAYER_CFGS[cfg.arch]], cfg.width)
        self.features = tv_vgg.make_layers(layers, batch_norm=cfg.batch_norm)
        channels = [v for v in layers if v != "M"][-1]
        if cfg.head == "classic":
            hidden = max(64, int(round(4096 * cfg.width)))
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(channels * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(cfg.dropout),
                nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(cfg.dropout),
                nn.Linear(hidden, 1),
            )
        else:
            # Global average pooling: far fewer parameters, and resolution-independent.
            hidden = max(32, channels // 2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Dropout(cfg.dropout), nn.Linear(channels, hidden), nn.ReLU(True),
                nn.Dropout(cfg.dropout), nn.Linear(hidden, 1),
            )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation, so from-scratch runs match the reference.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier(x).squeeze(1)


def load_pretrained(model: VGG, cfg: TrainConfig) -> None:
    """Load ImageNet weights: `cfg.pretrained` is "imagenet" (torchvision's weights API,
    which reads its cache under $TORCH_HOME before it would download) or a file path."""
    if cfg.pretrained == "imagenet":
        enum_name = cfg.model_name.upper() + "_Weights"  # e.g. VGG16_BN_Weights
        weights = getattr(tv_vgg, enum_name).IMAGENET1K_V1
        try:
            state = weights.get_state_dict(progress=False, weights_only=True)
        except Exception as e:  # no network and no cache: say where the file belongs
            raise UserError(f"--pretrained imagenet: cannot load {weights.url}: {e}") from None
    else:
        path = Path(cfg.pretrained)
        if not path.is_file():
            raise UserError(f"--pretrained: {path}: no such file")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only=True refuses a crafted pickle here
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"--pretrained: {path}: not a weights file ({first[:200]})") from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise UserError(f"--pretrained: {path}: not a weights file (expected a state "
                            f"dict of tensors, got {type(state).__name__})")
    own = model.state_dict()
    # The 1000-class ImageNet output layer cannot fit one logit: keep ours there.
    keep = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in keep and not k.startswith("classifier.6")]
    if missing:
        raise UserError(f"--pretrained: weights do not match {cfg.model_name} "
                        f"(missing or mis-shaped: {', '.join(missing[:3])})")
    model.load_state_dict(keep, strict=False)


def build_model(cfg: TrainConfig) -> VGG:
    model = VGG(cfg)
    if cfg.pretrained:
        load_pretrained(model, cfg)
    return model
