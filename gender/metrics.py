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

from gender.runtime import as_runtime

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
def _time_batches(model, image_size: int, runtime, batch: int, iters: int) -> list[float]:
    rt = as_runtime(runtime)
    model.eval()
    x = rt.to_input(torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8))
    cuda = rt.device.type == "cuda"
    times = []
    for i in range(iters + 2):  # two warm-up passes (allocator, cudnn autotune)
        if cuda:
            torch.cuda.synchronize(rt.device)
        t0 = time.perf_counter()
        with rt.autocast():
            model(x)
        if cuda:
            torch.cuda.synchronize(rt.device)  # kernels are async: time their end
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times


def measure_latency(model, image_size: int, runtime, iters: int = 20) -> dict:
    """Per-image latency at batch 1, in milliseconds (p50, p95)."""
    t = np.array(_time_batches(model, image_size, runtime, 1, iters)) * 1e3
    return {"latency_ms_p50": float(np.percentile(t, 50)),
            "latency_ms_p95": float(np.percentile(t, 95))}


def measure_throughput(model, image_size: int, runtime, batch: int = 64,
                       iters: int = 5) -> float:
    """Images per second at a given batch size (median over iterations)."""
    return float(batch / np.median(_time_batches(model, image_size, runtime, batch, iters)))
