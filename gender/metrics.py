"""Classification metrics from probabilities (scikit-learn), and inference timing.

`f1`, `precision` and `recall` are macro averages over the two classes, so neither
gender is the "positive" one; per-class recall is reported beside them.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

__all__ = ["binary_metrics", "measure_latency", "measure_throughput"]


def binary_metrics(y_true, prob_male, threshold: float = 0.5) -> dict:
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob_male, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    prec, rec, f1, _ = precision_recall_fscore_support(
        y, pred, labels=[0, 1], average=None, zero_division=0)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(prec.mean()),
        "recall": float(rec.mean()),
        "f1": float(f1.mean()),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "recall_female": float(rec[0]),
        "recall_male": float(rec[1]),
        "confusion": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
    }


@torch.inference_mode()
def _time_batches(model, image_size: int, device, batch: int, iters: int) -> list[float]:
    model.eval()
    x = torch.rand(batch, 3, image_size, image_size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(iters + 2):  # two warm-up passes (allocator, cudnn autotune)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # kernels are async: time their end
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times


def measure_latency(model, image_size: int, device, iters: int = 20) -> dict:
    """Per-image latency at batch 1, in milliseconds (p50, p95)."""
    t = np.array(_time_batches(model, image_size, device, 1, iters)) * 1e3
    return {"latency_ms_p50": float(np.percentile(t, 50)),
            "latency_ms_p95": float(np.percentile(t, 95))}


def measure_throughput(model, image_size: int, device, batch: int = 64, iters: int = 5) -> float:
    """Images per second at a given batch size (median over iterations)."""
    return float(batch / np.median(_time_batches(model, image_size, device, batch, iters)))
