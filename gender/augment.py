"""Augmentation on batched tensors, on the training device (no per-image PIL work).

One knob, `strength` in [0, 1], scales every transform so the tuner can search it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment", "normalize", "MEAN", "STD"]

# ImageNet statistics: the same for scratch and pretrained runs keeps one preprocessing.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Float NCHW in [0, 1] -> standardised with the ImageNet mean and std."""
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(x: torch.Tensor, strength: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Random flip, small affine and colour jitter on float images in [0, 1] (NCHW)."""
    if strength <= 0:
        return x
    n, dev = x.shape[0], x.device

    def rand(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, device="cpu", generator=gen).to(dev)

    # Colour jitter: brightness, contrast, saturation, each +-40% at full strength.
    s = 0.4 * strength
    x = x * rand(1 - s, 1 + s).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * rand(1 - s, 1 + s).view(n, 1, 1, 1) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * rand(1 - s, 1 + s).view(n, 1, 1, 1) + grey
    x = x.clamp(0, 1)

    # Affine: rotation +-15 deg, translation +-10%, scale +-10%, and a horizontal flip,
    # all in one grid_sample so the image is resampled once.
    angle = rand(-15, 15) * strength * math.pi / 180
    scale = 1 + rand(-0.1, 0.1) * strength
    flip = torch.where(rand(0, 1) < 0.5, -1.0, 1.0)
    tx, ty = rand(-0.1, 0.1) * strength * 2, rand(-0.1, 0.1) * strength * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos * flip, -sin, tx], dim=1),
        torch.stack([sin * flip, cos, ty], dim=1),
    ], dim=1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
