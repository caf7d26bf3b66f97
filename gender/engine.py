"""The one training loop, shared by `gender train`, every Ray trial and the final retrain.

`Trainer` owns model, optimiser, schedule and RNG state (all checkpointable);
`train_one_epoch` and `evaluate` are the only places a batch is processed.

Device options (bf16 autocast, channels_last) come from `gender.runtime.Runtime`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel

from gender.config import TrainConfig
from gender.data.splits import pos_weight, undersample_indices
from gender.data.tensors import TensorData
from gender.errors import ConfigError, UserError
from gender.metrics import binary_metrics, measure_latency
from gender.models import build_model
from gender.runtime import Runtime, as_runtime

__all__ = ["Trainer", "Diverged", "Runtime", "resolve_device", "train_one_epoch", "evaluate",
           "predict_probs"]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite: the configuration is hopeless."""


def resolve_device(spec: str = "auto") -> torch.device:
    """Pick the device once. "auto": the (Ray-assigned, visible) GPU if any, else CPU."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        device = None
    # torch knows more device types (meta, mps, xla, ...) than we train and predict on.
    if device is None or device.type not in ("cpu", "cuda"):
        raise UserError(f"--device {spec}: not a device to run on (use auto, cpu, cuda, "
                        "cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec}: CUDA is not available on this machine")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: this machine has "
                            f"{torch.cuda.device_count()} GPU(s), cuda:0 and up")
    return device


def _mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, gen: torch.Generator):
    """Blend the batch with a shuffled copy of itself, labels alike (Zhang et al. 2018).
    The Beta draw is seeded from `gen`, so a resumed run makes the same draws."""
    lam = float(np.random.default_rng(int(torch.randint(2**31, (1,), generator=gen)))
                .beta(alpha, alpha))
    perm = torch.randperm(len(y), generator=gen).to(y.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def train_one_epoch(model, opt, sched, data: TensorData, idx: np.ndarray, cfg: TrainConfig,
                    runtime: Runtime | torch.device, gen: torch.Generator, pos_weight: float,
                    on_step: Callable[[int], None] | None = None) -> dict:
    rt = as_runtime(runtime)
    model.train()
    order = idx[torch.randperm(len(idx), generator=gen).numpy()]
    pw = torch.tensor(pos_weight, device=rt.device)
    total, seen, t0 = 0.0, 0, time.perf_counter()
    for start in range(0, len(order), cfg.batch_size):
        b = order[start:start + cfg.batch_size]
        if len(b) < 2 and cfg.batch_norm:
            continue  # batch norm cannot train on a batch of one (TrainConfig refuses size 1)
        x = rt.to_input(data.images[b], cfg.augment, gen)
        y = data.labels[b].to(rt.device)
        if cfg.mixup > 0:
            x, y = _mixup(x, y, cfg.mixup, gen)
        with rt.autocast():
            logits = model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pw)
        if not torch.isfinite(loss):
            raise Diverged(f"training loss is {loss.item()} at step {start // cfg.batch_size}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(b)  # .item() syncs once per step; cheap next to a VGG step
        seen += len(b)
        if on_step is not None:
            on_step(len(b))
    secs = time.perf_counter() - t0
    return {"train_loss": total / max(seen, 1), "train_seconds": secs,
            "images_per_s": seen / secs if secs > 0 else 0.0}


@torch.inference_mode()
def predict_probs(model, images_u8: torch.Tensor, runtime: Runtime | torch.device,
                  batch_size: int = 256) -> np.ndarray:
    """P(male) for every image of a uint8 batch tensor."""
    rt = as_runtime(runtime)
    model.eval()
    out = []
    for start in range(0, len(images_u8), batch_size):
        x = rt.to_input(images_u8[start:start + batch_size])
        with rt.autocast():
            out.append(torch.sigmoid(model(x).float()).cpu())
    return torch.cat(out).numpy() if out else np.zeros(0)


def evaluate(model, data: TensorData, idx: np.ndarray, runtime: Runtime | torch.device,
             batch_size: int = 256) -> dict:
    y = data.labels[idx].numpy()
    p = predict_probs(model, data.images[idx], runtime, batch_size)
    eps = 1e-7
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    return {"loss": loss, **binary_metrics(y, p), "probs": p}


def make_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


def make_schedule(opt, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(steps_per_epoch, total // 10)  # a short warm-up keeps high lrs from blowing up

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if cfg.lr_schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / (total - warmup))))
        if cfg.lr_schedule == "step":
            return 0.1 ** int(3 * step / total)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _ema_update(decay: float):
    """EMA step for AveragedModel, with timm's warm-up: the decay grows as (1+n)/(10+n)
    up to `decay`, so a short run (or ASHA's first rung) is not judged on weights that
    still remember the random initialisation."""

    def update(averaged: list, current: list, n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - d)
        else:  # integer buffers (batch norm's step count): keep the latest
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


class Trainer:
    """One run: `fit` trains on `train_split` for `cfg.epochs` epochs (the length of the
    learning-rate schedule) or until an earlier epoch, evaluating `eval_split` each epoch.

    `on_epoch(epoch, metrics)` is called after every epoch (the tuner reports and
    checkpoints there); returning False stops the run. Class balance follows
    `cfg.balance`: a weighted loss, or the majority class of the training rows
    undersampled (seeded by `cfg.seed`), or neither.
    """

    def __init__(self, cfg: TrainConfig, data: TensorData, device: torch.device | str,
                 train_split: str | tuple[str, ...] = "train", eval_split: str | None = "val",
                 *, bf16: bool | None = None, channels_last: bool | None = None):
        if data.view != cfg.input_view:  # a model must train on the pictures it will be shown
            raise ConfigError(f"the data is decoded at {data.image_size} px, crop {data.crop:g}"
                              f"; the config asks for {cfg.image_size} px, crop {cfg.crop:g}")
        self.cfg, self.data = cfg, data
        self.runtime = Runtime(device, bf16=bf16, channels_last=channels_last)
        self.device = self.runtime.device
        names = (train_split,) if isinstance(train_split, str) else train_split
        idx = np.sort(np.concatenate([data.splits[n] for n in names]))
        labels = data.labels.numpy()
        if cfg.balance == "undersample":
            idx = undersample_indices(idx, labels, cfg.seed)
        self.train_idx = idx
        self.eval_split = eval_split
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.model = self.runtime.prepare_model(build_model(cfg))
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        # The averaged weights are the ones evaluated, checkpointed as "ema" and exported:
        # on small data they sit in a flatter spot than the last step's (buffers too, so
        # batch-norm statistics match the averaged weights).
        self.ema = (AveragedModel(self.model, multi_avg_fn=_ema_update(cfg.ema),
                                  use_buffers=True) if cfg.ema > 0 else None)
        self.opt = make_optimizer(self.model, cfg)
        steps = math.ceil(len(self.train_idx) / cfg.batch_size)
        self.sched = make_schedule(self.opt, cfg, steps)
        self.epoch = 0
        self.history: list[dict] = []
        # Weighted loss: a male example counts n_female / n_male as much, so the rarer
        # class is not ignored.
        self.pos_weight = (pos_weight(labels[idx]) if cfg.balance == "weighted" else 1.0)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights to evaluate and export: the moving average when `cfg.ema` is on."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(),
                **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
                "optimizer": self.opt.state_dict(),
                "schedule": self.sched.state_dict(), "epoch": self.epoch,
                # Dropout draws from torch's global RNG: save it too, so a resumed run
                # continues exactly as an uninterrupted one would.
                "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                "history": self.history,
                "config": self.cfg.to_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["schedule"])
        self.epoch = int(state["epoch"])
        self.gen.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.history = list(state["history"])

    def run_epoch(self, on_step: Callable[[int], None] | None = None) -> dict:
        t0 = time.perf_counter()
        step = on_step
        if self.ema is not None:
            def step(n: int) -> None:
                self.ema.update_parameters(self.model)
                if on_step is not None:
                    on_step(n)
        m = train_one_epoch(self.model, self.opt, self.sched, self.data, self.train_idx,
                            self.cfg, self.runtime, self.gen, self.pos_weight, step)
        self.epoch += 1
        m["epoch"] = self.epoch
        if self.eval_split:
            ev = evaluate(self.eval_model, self.data, self.data.splits[self.eval_split],
                          self.runtime)
            ev.pop("probs")
            m.update({("val_" + k): v for k, v in ev.items()})
        m.update(measure_latency(self.eval_model, self.data.image_size, self.runtime, iters=10))
        m["epoch_seconds"] = time.perf_counter() - t0
        self.history.append({k: v for k, v in m.items() if not isinstance(v, list)})
        return m

    def fit(self, on_epoch: Callable[[int, dict], bool | None] | None = None,
            on_step: Callable[[int], None] | None = None,
            until: int | None = None) -> list[dict]:
        """Train to epoch `until` (default: the schedule's end, `cfg.epochs`)."""
        stop = self.cfg.epochs if until is None else min(until, self.cfg.epochs)
        while self.epoch < stop:
            m = self.run_epoch(on_step)
            if on_epoch is not None and on_epoch(self.epoch, m) is False:
                break
        return self.history
