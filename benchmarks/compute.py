"""Compute efficiency: training FLOP/s per architecture and image size against this
machine's fp32 matmul peak.

FLOPs of one training step (forward + backward) are counted by
`torch.utils.flop_counter.FlopCounterMode` around the one training loop on a single
batch; steps/s are measured by the same loop over a few batches (random images, no
augmentation, so only the model's work is timed), the best of a few passes. Each model is
timed in the default memory layout (channels_last, `gender.runtime.Runtime`) and again
contiguous (NCHW), so the table shows what the default buys on this CPU.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import Options, fmt_table, set_threads
from gender.config import ARCHS, TrainConfig
from gender.data.tensors import TensorData
from gender.engine import Trainer, train_one_epoch

__all__ = ["run", "matmul_peak", "training_flops"]

WIDTH = 0.25
BATCH = 64
# Steps/s: the best of `repeats` passes of `steps` steps. On a shared machine the best pass
# is the one least disturbed by other work, as the matmul peak is the best of its reps.
FULL = {"models": [(a, bn) for a in ARCHS for bn in (False, True)], "sizes": (32, 64),
        "steps": 2, "repeats": 3, "peak_n": 2048, "peak_reps": 8}
QUICK = {"models": [("vgg11", True), ("vgg19", True)], "sizes": (32, 64), "steps": 2,
         "repeats": 2, "peak_n": 1024, "peak_reps": 5}


def matmul_peak(n: int, reps: int) -> float:
    """fp32 FLOP/s of the best of `reps` n x n matrix products (all intra-op threads)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up: allocation, thread pool
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(reps))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _trainer(cfg: TrainConfig, n: int, channels_last: bool | None = None) -> Trainer:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 3, cfg.image_size, cfg.image_size), dtype=np.uint8)
    labels = (np.arange(n) % 2).astype(np.float32)
    data = TensorData.from_arrays(images, labels, {"train": np.arange(n)}, cfg.crop)
    return Trainer(cfg, data, torch.device("cpu"), eval_split=None,
                   channels_last=channels_last)


def _epoch(t: Trainer, idx: np.ndarray) -> dict:
    return train_one_epoch(t.model, t.opt, t.sched, t.data, idx, t.cfg, t.runtime, t.gen,
                           t.pos_weight)


def _images_per_s(t: Trainer, repeats: int) -> float:
    _epoch(t, t.train_idx[:BATCH])  # warm-up
    return max(_epoch(t, t.train_idx)["images_per_s"] for _ in range(repeats))


def training_flops(t: Trainer) -> int:
    """FLOPs of one training step of `t` (a batch of its configured size)."""
    with FlopCounterMode(display=False) as counter:
        _epoch(t, t.train_idx[:t.cfg.batch_size])
    return int(counter.get_total_flops())


def run(opts: Options) -> dict:
    p = QUICK if opts.quick else FULL
    threads = set_threads()
    peak = matmul_peak(p["peak_n"], p["peak_reps"])
    print(f"compute: fp32 matmul peak {peak / 1e9:.1f} GFLOP/s ({p['peak_n']}^2 torch.mm, "
          f"{threads} threads); training at width {WIDTH}, batch {BATCH}: best of {p['repeats']} "
          f"passes of {p['steps']} steps a model, after a warm-up step", flush=True)
    rows = []
    for arch, bn in p["models"]:
        for size in p["sizes"]:
            cfg = TrainConfig(arch=arch, batch_norm=bn, width=WIDTH, head="gap",
                              image_size=size, batch_size=BATCH, augment=0.0, seed=0)
            t = _trainer(cfg, BATCH * p["steps"])
            flops = training_flops(t)
            # The two layouts in turns, so a burst of other work hits both alike.
            ips = _images_per_s(t, p["repeats"])
            nchw = _images_per_s(_trainer(cfg, BATCH * p["steps"], channels_last=False),
                                 p["repeats"])
            steps_per_s = ips / BATCH
            rows.append({"model": cfg.model_name, "image_size": size,
                         "gflop_per_step": flops / 1e9, "gflop_per_image": flops / BATCH / 1e9,
                         "steps_per_s": steps_per_s, "images_per_s": ips,
                         "gflop_per_s": flops * steps_per_s / 1e9,
                         "share_of_peak": flops * steps_per_s / peak,
                         "images_per_s_contiguous": nchw, "channels_last_speedup": ips / nchw})
            print(f"compute: {cfg.model_name} {size} px: {rows[-1]['gflop_per_s']:.1f} GFLOP/s",
                  flush=True)
    print(fmt_table(rows, {"model": "model", "image_size": "px",
                           "gflop_per_step": "GFLOP/step", "steps_per_s": "steps/s",
                           "images_per_s": "images/s", "gflop_per_s": "GFLOP/s",
                           "share_of_peak": "of matmul peak",
                           "images_per_s_contiguous": "images/s NCHW",
                           "channels_last_speedup": "channels_last x"}))
    return {"peak_flops": peak, "peak_matmul_n": p["peak_n"], "threads": threads,
            "width": WIDTH, "batch_size": BATCH, "steps": p["steps"], "repeats": p["repeats"],
            "rows": rows}
