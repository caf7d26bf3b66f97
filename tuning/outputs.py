"""Experiment outputs: `trials.csv` (one row per trial) and the choice of the best trial."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from gender.io import atomic_path
from tuning.space import SEARCHABLE

__all__ = ["trials_table", "write_trials", "pick_best", "STATUSES"]

STATUSES = ("completed", "stopped early", "diverged", "errored")
_METRICS = ("val_f1", "val_accuracy", "val_precision", "val_recall", "val_auc", "val_loss",
            "latency_ms_p50", "images_per_s", "epoch_seconds")


def _status(result, df: pd.DataFrame, max_epochs: int) -> str:
    if result.error is not None:
        return "errored"
    if "diverged" in df and (df["diverged"] == 1).any():
        return "diverged"
    epochs = int(df["training_iteration"].max()) if len(df) else 0
    return "completed" if epochs >= max_epochs else "stopped early"


def trials_table(results, max_epochs: int) -> pd.DataFrame:
    """ResultGrid -> DataFrame: hyperparameters, best and last metrics, epochs, status."""
    rows = []
    for r in results:
        if r.config is None and r.error is None:
            continue  # proposed but never started (the time budget ran out first)
        df = r.metrics_dataframe if r.metrics_dataframe is not None else pd.DataFrame()
        row = {"trial_id": (r.metrics or {}).get("trial_id") or Path(r.path).name.split("_")[1]}
        row.update({k: (r.config or {}).get(k) for k in SEARCHABLE})  # absent if it did not apply
        ok = df[df.get("diverged", 0) != 1] if "diverged" in df else df
        best = ok.loc[ok["val_f1"].idxmax()] if len(ok) and "val_f1" in ok else None
        last = df.iloc[-1] if len(df) else None
        for m in _METRICS:
            row[f"best_{m}"] = best[m] if best is not None and m in best else math.nan
        for m in ("val_f1", "val_accuracy", "latency_ms_p50"):
            row[f"last_{m}"] = last[m] if last is not None and m in last else math.nan
        row["best_epoch"] = int(best["training_iteration"]) if best is not None else 0
        row["epochs"] = int(df["training_iteration"].max()) if len(df) else 0
        row["status"] = _status(r, df, max_epochs)
        row["seconds"] = float(df["time_total_s"].max()) if "time_total_s" in df else 0.0
        row["nodes"] = ",".join(sorted(set(df["node_id"].dropna()))) if "node_id" in df else ""
        row["error"] = str(r.error).splitlines()[0][:300] if r.error is not None else ""
        row["path"] = r.path
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("trial_id").reset_index(drop=True) if len(table) else table


def write_trials(table: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        table.drop(columns=["path"], errors="ignore").to_csv(tmp, index=False)


def pick_best(table: pd.DataFrame) -> pd.Series | None:
    """Highest best validation F1; ties go to lower latency. Diverged and errored
    trials can never be best."""
    ok = table[table["status"].isin(["completed", "stopped early"])]
    ok = ok[ok["best_val_f1"].notna()]
    if not len(ok):
        return None
    ranked = ok.assign(_f1=ok["best_val_f1"].round(6)).sort_values(
        ["_f1", "best_latency_ms_p50"], ascending=[False, True])
    return ranked.iloc[0].drop(labels="_f1")
