"""Where and how batches run: the device, bf16 autocast and channels_last, chosen once.

These are device options, not hyperparameters. bf16 defaults to on for CUDA and off on the
CPU, where it has no fast kernels on most machines and fp32 keeps runs exact;
channels_last defaults to on for both (oneDNN's CPU convolutions are faster in it too:
`python -m benchmarks --only compute`).
"""

from __future__ import annotations

import contextlib

import torch

from gender.augment import augment, normalize

__all__ = ["Runtime", "as_runtime"]


class Runtime:
    """Where and how batches run: the device, bf16 autocast, channels_last."""

    def __init__(self, device: torch.device | str = "cpu", bf16: bool | None = None,
                 channels_last: bool | None = None):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.bf16 = cuda if bf16 is None else bool(bf16)
        self.channels_last = True if channels_last is None else bool(channels_last)

    def autocast(self):
        # bf16 needs no loss scaling; off, this is a no-op context and fp32 stays exact.
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def to_input(self, images_u8: torch.Tensor, strength: float = 0.0,
                 gen: torch.Generator | None = None) -> torch.Tensor:
        x = images_u8.to(self.device, non_blocking=True).float().div_(255.0)
        x = normalize(augment(x, strength, gen))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __repr__(self) -> str:
        return (f"Runtime({self.device}, bf16={self.bf16}, "
                f"channels_last={self.channels_last})")


def as_runtime(device) -> Runtime:
    return device if isinstance(device, Runtime) else Runtime(device)
