"""Classification metrics from probabilities, and inference timing.

`f1`, `precision` and `recall` are macro averages over the two classes, so neither
gender is the "positive" one; per-class recall is reported beside them.

`interval_metrics` adds what a test figure means at its size (Wilson 95 % intervals of
accuracy and of each class's recall) and whether the probabilities mean what they say:
expected calibration error (ECE) of the shown confidence, max(p, 1 - p), in equal-width
bins, with the reliability table behind it, negative log-likelihood and Brier score.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gender.runtime import as_runtime

__all__ = ["binary_metrics", "roc_auc", "interval_metrics", "wilson_interval", "calibration",
           "measure_latency", "measure_throughput", "ECE_BINS"]

ECE_BINS = 10  # equal-width bins of the shown confidence over [0.5, 1]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)  # 0 where undefined


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic: the chance that a random
    male face scores above a random female one, ties counted half (average ranks)."""
    _, where, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[where]
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def binary_metrics(y_true, prob_male, threshold: float = 0.5) -> dict:
    """Accuracy, macro precision/recall/F1 (a class never predicted counts 0), AUC,
    per-class recall and the confusion matrix (rows: true female, male)."""
    y = np.asarray(y_true).astype(int)
    p = np.asarray(prob_male, dtype=np.float64)
    pred = (p >= threshold).astype(int)
    confusion = np.bincount(2 * y + pred, minlength=4).reshape(2, 2)
    hits = np.diag(confusion).astype(np.float64)
    prec = _ratio(hits, confusion.sum(axis=0).astype(np.float64))
    rec = _ratio(hits, confusion.sum(axis=1).astype(np.float64))
    f1 = _ratio(2 * prec * rec, prec + rec)
    both = len(np.unique(y)) == 2
    return {
        "accuracy": float(hits.sum() / max(1, len(y))),
        "precision": float(prec.mean()),
        "recall": float(rec.mean()),
        "f1": float(f1.mean()),
        "auc": roc_auc(y, p) if both else float("nan"),
        "recall_female": float(rec[0]),
        "recall_male": float(rec[1]),
        "confusion": confusion.tolist(),
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> list[float]:
    """95 % Wilson score interval of a proportion (sound at small n and near 0 or 1)."""
    if n == 0:
        return [float("nan"), float("nan")]
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [float(centre - half), float(centre + half)]


def calibration(y_true, prob_male, bins: int = ECE_BINS) -> dict:
    """ECE of the shown confidence max(p, 1 - p), its reliability table, NLL and Brier."""
    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(prob_male, dtype=np.float64), 1e-7, 1 - 1e-7)
    conf = np.maximum(p, 1 - p)
    correct = ((p >= 0.5).astype(int) == y).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            gap = abs(conf[m].mean() - correct[m].mean())
            ece += m.mean() * gap
            table.append({"low": float(edges[b]), "high": float(edges[b + 1]),
                          "n": int(m.sum()), "confidence": float(conf[m].mean()),
                          "accuracy": float(correct[m].mean())})
    return {"ece": float(ece),
            "nll": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
            "brier": float(np.mean((p - y) ** 2)), "reliability": table}


def interval_metrics(y_true, prob_male) -> dict:
    """Intervals and calibration for a held-out figure (see the module's docstring)."""
    y = np.asarray(y_true).astype(int)
    pred = (np.asarray(prob_male) >= 0.5).astype(int)
    n_f, n_m = int((y == 0).sum()), int((y == 1).sum())
    ok_f, ok_m = int(((pred == 0) & (y == 0)).sum()), int(((pred == 1) & (y == 1)).sum())
    return {"accuracy_ci95": wilson_interval(ok_f + ok_m, len(y)),
            "recall_female_ci95": wilson_interval(ok_f, n_f),
            "recall_male_ci95": wilson_interval(ok_m, n_m),
            "recall_gap": (ok_m / n_m if n_m else np.nan) - (ok_f / n_f if n_f else np.nan),
            "n_female": n_f, "n_male": n_m, **calibration(y, prob_male)}


@torch.inference_mode()
def _time_batches(model, image_size: int, runtime, batch: int, iters: int,
                  uint8_input: bool = False) -> list[float]:
    rt = as_runtime(runtime)
    model.eval()
    x = torch.randint(0, 256, (batch, 3, image_size, image_size), dtype=torch.uint8)
    # A Deployable takes the picture as uint8 (normalisation inside); a bare VGG, floats.
    x = x.to(rt.device) if uint8_input else rt.to_input(x)
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


def measure_latency(model, image_size: int, runtime, iters: int = 20,
                    uint8_input: bool = False) -> dict:
    """Per-image latency at batch 1, in milliseconds (p50, p95)."""
    t = np.array(_time_batches(model, image_size, runtime, 1, iters, uint8_input)) * 1e3
    return {"latency_ms_p50": float(np.percentile(t, 50)),
            "latency_ms_p95": float(np.percentile(t, 95))}


def measure_throughput(model, image_size: int, runtime, batch: int = 64,
                       iters: int = 5, uint8_input: bool = False) -> float:
    """Images per second at a given batch size (median over iterations)."""
    return float(batch / np.median(_time_batches(model, image_size, runtime, batch, iters,
                                                 uint8_input)))
