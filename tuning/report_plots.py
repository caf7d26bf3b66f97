"""The report's figures: one function per PNG, drawn with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` on an explicit Agg canvas, never through
pyplot, so writing a report neither needs a display nor changes the caller's backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from gender.io import atomic_path

__all__ = ["figure", "save", "curves_png", "parallel_png", "importance_png", "pareto_png",
           "confusion_png", "roc_png", "reliability_png", "value_key"]

_STYLE = {"completed": "-", "stopped early": "-", "diverged": "--", "errored": ":"}


def figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def value_key(v) -> str:
    """One spelling per value, whether it came from JSON, params.json or a CSV column."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, float, np.number)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def curves_png(curves: dict[str, tuple[pd.DataFrame, str]], rungs: list[int],
               max_epochs: int, path: Path) -> Path:
    """Validation F1 per epoch for every trial; x at the epoch ASHA stopped a trial."""
    fig = figure(10, 4.8)
    ax = fig.add_subplot()
    for r in rungs:
        ax.axvline(r, color="0.85", lw=1, zorder=0)
    colors = colormaps["tab20"].colors
    for i, (tid, (df, status)) in enumerate(sorted(curves.items())):
        if df.empty or "val_f1" not in df:
            continue
        c = colors[i % len(colors)]
        x, y = df["training_iteration"].to_numpy(), df["val_f1"].to_numpy()
        ax.plot(x, y, _STYLE.get(status, "-"), color=c, marker=".", label=f"{tid} ({status})")
        if status == "stopped early":
            ax.plot(x[-1], y[-1], "x", color=c, ms=11, mew=2.5)
    ax.set(xlabel="epoch", ylabel="validation F1 (macro)", xlim=(0.8, max_epochs + 0.2),
           title="x: stopped by ASHA   dashed: diverged   grey verticals: ASHA rungs")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return save(fig, path)


def _axis(values: pd.Series, spec: dict) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Values -> positions in [0, 1] (NaN where absent) and the axis' ticks."""
    if "choices" in spec or not pd.api.types.is_numeric_dtype(values.dropna()):
        keys = [value_key(c) for c in spec.get("choices", [])]
        keys += sorted({value_key(v) for v in values.dropna()} - set(keys))
        pos = {k: (i / (len(keys) - 1) if len(keys) > 1 else 0.5) for i, k in enumerate(keys)}
        y = np.array([pos[value_key(v)] if pd.notna(v) else np.nan for v in values])
        return y, [(p, k) for k, p in pos.items()]
    v = values.astype(float).to_numpy()
    lo = min(spec.get("low", np.nanmin(v)), np.nanmin(v))
    hi = max(spec.get("high", np.nanmax(v)), np.nanmax(v))
    f = np.log10 if spec.get("log") and lo > 0 else (lambda a: np.asarray(a, dtype=float))
    span = float(f(hi) - f(lo)) or 1.0
    y = (f(v) - f(lo)) / span
    ticks = [(float((f(t) - f(lo)) / span), f"{t:.3g}") for t in (lo, _mid(lo, hi, spec), hi)]
    return y, ticks


def _mid(lo: float, hi: float, spec: dict) -> float:
    return math.sqrt(lo * hi) if spec.get("log") and lo > 0 else (lo + hi) / 2


def parallel_png(table: pd.DataFrame, params: list[str], space: dict, path: Path) -> Path:
    """Parallel coordinates: one axis per hyperparameter (categoricals as ticks, log scales
    where the space is log), a last axis for best F1, lines coloured by best F1."""
    f1 = table["best_val_f1"].astype(float)
    cols = [_axis(table[p], space.get(p, {})) for p in params]
    cols.append(_axis(f1, {}))
    names = [*params, "best F1"]
    fig = figure(max(8, 1.05 * len(names)), 4.8)
    ax = fig.add_subplot()
    finite = f1.dropna()
    norm = Normalize(finite.min() if len(finite) else 0, finite.max() if len(finite) else 1)
    cmap = colormaps["viridis"]
    xs = np.arange(len(names))
    for i in np.argsort(f1.fillna(-1).to_numpy()):  # best drawn last, on top
        y = np.array([c[0][i] for c in cols])
        y = np.where(np.isnan(y), -0.12, y)  # absent (conditional) parameters: "n/a" row
        color = cmap(norm(f1.iloc[i])) if pd.notna(f1.iloc[i]) else "0.6"
        ls = "--" if table["status"].iloc[i] in ("diverged", "errored") else "-"
        ax.plot(xs, y, ls, color=color, lw=1.6, alpha=0.85)
    for x, (_, ticks) in zip(xs, cols, strict=True):
        ax.axvline(x, color="0.3", lw=0.8)
        for y, label in ticks:
            ax.text(x + 0.04, y, label, fontsize=7, va="center", ha="left")
        ax.text(x + 0.04, -0.12, "n/a", fontsize=7, va="center", color="0.5")
    ax.set_xticks(xs, names, rotation=30, ha="right", fontsize=8)
    ax.set(yticks=[], ylim=(-0.18, 1.06), xlim=(-0.3, len(names) - 0.4))
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="best validation F1", shrink=0.8)
    return save(fig, path)


def importance_png(importances: dict[str, dict[str, float]], path: Path) -> Path:
    """Horizontal bars, one group per hyperparameter, one bar per evaluator."""
    names = list(next(iter(importances.values())))  # the first evaluator's order
    fig = figure(8, 0.45 * len(names) + 1.2)
    ax = fig.add_subplot()
    h = 0.8 / len(importances)
    for k, (evaluator, imp) in enumerate(importances.items()):
        ys = np.arange(len(names)) + k * h
        ax.barh(ys, [imp.get(n, 0.0) for n in names], height=h, label=evaluator)
    ax.set_yticks(np.arange(len(names)) + h * (len(importances) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set(xlabel="importance (sums to 1 per evaluator)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def pareto_png(table: pd.DataFrame, front: np.ndarray, path: Path) -> Path:
    """Best validation F1 against per-image latency; the front joined as a staircase."""
    fig = figure(8, 4.8)
    ax = fig.add_subplot()
    lat, f1 = table["best_latency_ms_p50"].astype(float), table["best_val_f1"].astype(float)
    bad = table["status"].isin(["diverged", "errored"]).to_numpy()
    ax.scatter(lat[~bad & ~front], f1[~bad & ~front], c="0.55", label="trial")
    if bad.any():
        ax.scatter(lat[bad], f1[bad], c="0.75", marker="x", label="diverged / errored")
    order = np.argsort(lat[front].to_numpy())
    fx, fy = lat[front].to_numpy()[order], f1[front].to_numpy()[order]
    ax.step(fx, fy, where="post", color="tab:red", lw=1.2, alpha=0.7)
    ax.scatter(fx, fy, c="tab:red", s=60, zorder=3, label="Pareto front")
    for x, y, tid in zip(fx, fy, table["trial_id"][front].to_numpy()[order], strict=True):
        ax.annotate(str(tid), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set(xlabel="latency per image, batch 1, p50 (ms)", ylabel="best validation F1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save(fig, path)


def confusion_png(confusion: list[list[int]], path: Path) -> Path:
    """Rows: true class; columns: predicted. Counts and the share of each true class."""
    m = np.asarray(confusion, dtype=float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = figure(4.2, 3.6)
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{int(m[i, j])}\n{share[i, j]:.1%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks([0, 1], ["female", "male"])
    ax.set_yticks([0, 1], ["female", "male"])
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    return save(fig, path)


def roc_png(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: Path) -> Path:
    fig = figure(4.2, 3.8)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, color="tab:blue", lw=2, label=f"AUC {auc:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="0.6")
    ax.set(xlabel="false positive rate (female called male)",
           ylabel="true positive rate (male)", title="test ROC, P(male)", xlim=(0, 1),
           ylim=(0, 1.01))
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return save(fig, path)


def reliability_png(table: list[dict], ece: float, path: Path) -> Path:
    """Accuracy against shown confidence per bin (metrics.json "reliability"); the
    diagonal is a perfectly calibrated model, the bars' widths are the bins."""
    fig = figure(4.2, 3.8)
    ax = fig.add_subplot()
    ax.plot([0.5, 1], [0.5, 1], ":", color="0.6")
    for row in table:
        width = row["high"] - row["low"]
        ax.bar(row["low"], row["accuracy"], width=width, align="edge", color="tab:blue",
               alpha=0.6, edgecolor="white")
        ax.text(row["low"] + width / 2, 0.51, str(row["n"]), ha="center", fontsize=6,
                color="0.3")
    ax.plot([r["confidence"] for r in table], [r["accuracy"] for r in table], "o-",
            color="tab:red", ms=4, label=f"ECE {ece:.3f}")
    ax.set(xlabel="shown confidence max(p, 1 - p)", ylabel="accuracy in the bin",
           title="test reliability (numbers: images)", xlim=(0.5, 1), ylim=(0.5, 1.01))
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, path)
