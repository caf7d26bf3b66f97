"""What each trial came to, decided in one place, and `trials.csv`, the report of it.

`outcome` reads one trial's per-epoch results and says its best epoch (highest validation
F1 among epochs that did not diverge) and its status. `trials.csv`, the retrain's choice of
the best trial, the HTML report and the TensorBoard dashboard all take it from here.
`trials.csv` is written for people; nothing reads it back as an input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gender.io import atomic_path
from tuning.space import CONDITIONAL

__all__ = ["Outcome", "outcome", "trials_table", "write_trials", "pick_best", "rank_trials",
           "STATUSES"]

STATUSES = ("completed", "stopped early", "diverged", "errored")
_METRICS = ("val_f1", "val_accuracy", "val_precision", "val_recall", "val_auc", "val_loss",
            "latency_ms_p50", "images_per_s", "epoch_seconds")


@dataclass
class Outcome:
    best: pd.Series | None  # the best epoch's row of progress, None if no epoch counts
    best_epoch: int  # 0 when there is none
    epochs: int  # epochs run
    status: str  # one of STATUSES, or "running"


def outcome(progress: pd.DataFrame, max_epochs: int, errored: bool = False,
            done: bool = True) -> Outcome:
    """One trial's per-epoch results -> its best epoch and status.

    `done`: the trial has ended (False while it runs: the dashboard follows live runs).
    """
    df = progress if progress is not None else pd.DataFrame()
    diverged = "diverged" in df and bool((df["diverged"] == 1).any())
    ok = df[df["diverged"] != 1] if "diverged" in df else df
    best = None
    if len(ok) and "val_f1" in ok and ok["val_f1"].notna().any():
        best = ok.loc[ok["val_f1"].idxmax()]
    epochs = int(df["training_iteration"].max()) if "training_iteration" in df and len(df) else 0
    if errored:
        status = "errored"
    elif diverged:
        status = "diverged"
    elif not done:
        status = "running"
    else:
        status = "completed" if epochs >= max_epochs else "stopped early"
    best_epoch = int(best["training_iteration"]) if best is not None else 0
    return Outcome(best, best_epoch, epochs, status)


def _searched(config: dict) -> dict:
    """Every hyperparameter the search gave the trial (conditional ones only where they
    applied), whatever the space searched: a `--space` may search any TrainConfig field."""
    from gender.config import TrainConfig

    fields = [f for f in TrainConfig.__dataclass_fields__ if f not in ("epochs", "seed",
                                                                        "pretrained")]
    out = {}
    for k in fields:
        if k in CONDITIONAL and config.get("optimizer") not in CONDITIONAL[k]:
            out[k] = None
        else:
            out[k] = config.get(k)
    return out


def trials_table(results, max_epochs: int) -> pd.DataFrame:
    """ResultGrid -> DataFrame: hyperparameters, best and last metrics, epochs, status."""
    rows = []
    for r in results:
        if r.config is None and r.error is None:
            continue  # proposed but never started (the time budget ran out first)
        df = r.metrics_dataframe if r.metrics_dataframe is not None else pd.DataFrame()
        o = outcome(df, max_epochs, errored=r.error is not None)
        row = {"trial_id": (r.metrics or {}).get("trial_id") or Path(r.path).name.split("_")[1]}
        row.update(_searched(r.config or {}))
        last = df.iloc[-1] if len(df) else None
        for m in _METRICS:
            row[f"best_{m}"] = o.best[m] if o.best is not None and m in o.best else math.nan
        for m in ("val_f1", "val_accuracy", "latency_ms_p50"):
            row[f"last_{m}"] = last[m] if last is not None and m in last else math.nan
        row["best_epoch"], row["epochs"], row["status"] = o.best_epoch, o.epochs, o.status
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


def rank_trials(table: pd.DataFrame) -> pd.DataFrame:
    """Trials that trained, best first: highest best validation F1, ties to lower latency.
    Diverged and errored trials are never ranked."""
    if not len(table):
        return table
    ok = table[table["status"].isin(["completed", "stopped early"])]
    ok = ok[ok["best_val_f1"].notna()]
    return ok.assign(_f1=ok["best_val_f1"].round(6)).sort_values(
        ["_f1", "best_latency_ms_p50"], ascending=[False, True]).drop(columns="_f1")


def pick_best(table: pd.DataFrame) -> pd.Series | None:
    ranked = rank_trials(table)
    return ranked.iloc[0] if len(ranked) else None
