"""Tuning efficiency: best validation F1 so far against the compute spent, three methods.

(a) the original notebook's method: its 12 hand-picked configurations
    (`tuning.space.NOTEBOOK_GRID`), each trained to the epoch cap;
(b) random search without early stopping: as many trials as the grid, each to the cap;
(c) this project's method: Optuna TPE proposing, ASHA stopping (default settings but
    the cap); and (c') the same with the package's default configuration as the first
    trial, which `gender tune` does unless `--no-default-first`.

Same data, cap, machine and concurrency for all three, all through Ray Tune
(`build_tuner`). Compute is counted in trial-epochs (every epoch any trial ran, in the
order they finished) and also in trial-seconds (the sum of those epochs' wall times).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, trial_frames, tune_once
from benchmarks.search_pool import SCALE
from gender.config import TrainConfig
from tuning.settings import TuneSettings
from tuning.space import (
    DEFAULT_SPACE,
    NOTEBOOK_GRID,
    SEARCHABLE,
    default_point,
    validate_space,
)

__all__ = ["run", "SCALE", "grid_space", "search_space", "best_so_far", "compute_to_reach"]

# Scaled for two CPU cores, identically for every method (SCALE: the search benchmark's
# width and image size): the grid keeps its arch, optimizer, lr, alpha, batch_norm and head.
# Full: the whole grid, as many random trials, TPE + ASHA at the project's defaults (20
# trials, grace 2, reduction 3) but the cap, which is lowered so the run fits ~15 minutes of
# two shared cores. Quick: a smoke run of the same pipeline (a quarter of the grid, cap 2);
# its figures say nothing about the methods.
FULL = {"max_epochs": 6, "grid_every": 1, "tpe_samples": 20, "grace_period": 2,
        "reduction_factor": 3}
QUICK = {"max_epochs": 2, "grid_every": 4, "tpe_samples": 3, "grace_period": 1,
         "reduction_factor": 2}


def search_space() -> dict:
    """The default search space at the scaled width and image size: (b) and (c) search it."""
    return validate_space({**DEFAULT_SPACE, **SCALE})


def grid_space() -> dict:
    """Only the grid's own values where it varies; every other hyperparameter a constant
    (TrainConfig's default, at the scaled width and size): only grid points can run."""
    defaults = TrainConfig(**SCALE).to_dict()
    space = {name: defaults[name] for name in SEARCHABLE}
    for name in sorted({k for p in NOTEBOOK_GRID for k in p}):
        space[name] = {"choices": sorted({p[name] for p in NOTEBOOK_GRID if name in p})}
    return validate_space(space, where="notebook grid")


def best_so_far(frame: pd.DataFrame) -> pd.DataFrame:
    """Epochs in the order they finished -> cumulative trial-epochs and best val F1 so far.

    progress.csv's `timestamp` has whole seconds; epochs of one trial keep their order.
    """
    df = frame.sort_values(["timestamp", "trial", "training_iteration"]).reset_index(drop=True)
    df["val_f1"] = df["val_f1"].fillna(0.0)  # an epoch that reported no F1 found nothing
    df["trial_epochs"] = np.arange(1, len(df) + 1)
    df["trial_seconds"] = df["time_this_iter_s"].fillna(0.0).cumsum()
    df["best_f1"] = df["val_f1"].cummax()
    return df


def compute_to_reach(curve: pd.DataFrame, target: float) -> tuple[float, float]:
    """(trial-epochs, trial-seconds) when best F1 first reached `target`; inf if never."""
    hit = curve[curve["best_f1"] >= target - 1e-12]
    if not len(hit):
        return math.inf, math.inf
    first = hit.iloc[0]
    return float(first["trial_epochs"]), float(first["trial_seconds"])


def _params(trial_dir) -> dict:
    """The configuration Ray gave a trial (its params.json), minus the constants."""
    path = trial_dir / "params.json"
    if not path.is_file():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if k in SEARCHABLE}


def _methods(p: dict) -> dict[str, dict]:
    points = [dict(c) for c in NOTEBOOK_GRID[::p["grid_every"]]]
    n = len(points)
    tpe = dict(num_samples=p["tpe_samples"], space=search_space(),
               grace_period=p["grace_period"], reduction_factor=p["reduction_factor"])
    return {
        "grid": {"label": f"notebook grid ({n} configs, no early stop)",
                 "settings": dict(num_samples=n, scheduler="fifo", space=grid_space(),
                                  enqueue=points)},
        "random": {"label": f"random search ({n} trials, no early stop)",
                   "settings": dict(num_samples=n, sampler="random", scheduler="fifo",
                                    space=search_space())},
        "tpe-asha": {"label": f"Optuna TPE + ASHA ({p['tpe_samples']} trials)",
                     "settings": tpe},
        # What `gender tune` runs by default: the same, with the package's default
        # configuration enqueued as the first trial (`default_point`).
        "tpe-asha-default": {
            "label": f"TPE + ASHA, default config first ({p['tpe_samples']} trials)",
            "settings": {**tpe, "enqueue": [default_point(search_space())]}},
    }


def _plot(curves: dict[str, pd.DataFrame], labels: dict, grid_best: float, grid_total: int,
          title: str, path) -> None:
    from tuning.report_plots import figure, save

    fig = figure(7, 4.2)
    ax = fig.add_subplot()
    for name, c in curves.items():
        if len(c):
            ax.step(c["trial_epochs"], c["best_f1"], where="post", label=labels[name])
    ax.axhline(grid_best, color="grey", ls="--", lw=0.8, label=f"grid's best ({grid_best:.3f})")
    ax.axvline(grid_total / 4, color="grey", ls=":", lw=0.8, label="1/4 of the grid's compute")
    ax.set_xlabel("cumulative trial-epochs (in order of completion)")
    ax.set_ylabel("best validation F1 so far")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    save(fig, Path(path))


def run(opts: Options) -> dict:
    data = data_dir(opts, "efficiency")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    methods = _methods(p)
    root = opts.runs / "efficiency"
    print(f"efficiency: scaled for this machine, identically for every method: width "
          f"{SCALE['width']}, {SCALE['image_size']} px; the grid keeps the notebook's arch, "
          f"optimizer, lr, alpha, batch_norm and head, its other hyperparameters at "
          f"TrainConfig's defaults; epoch cap {p['max_epochs']}; data {data}")
    curves, summary, trials = {}, {}, {}
    for name, m in methods.items():
        settings = TuneSettings(data=str(data), name=name, results=str(root.resolve()),
                                max_epochs=p["max_epochs"], retrain=False, seed=0,
                                **m["settings"])
        print(f"efficiency: {m['label']} ...", flush=True)
        t0 = time.perf_counter()
        tune_once(settings)
        wall = time.perf_counter() - t0
        frame = trial_frames(settings.exp_dir)
        curves[name] = best_so_far(frame) if len(frame) else frame
        summary[name] = {"label": m["label"], "wall_seconds": wall,
                         "trials": int(frame["trial"].nunique()) if len(frame) else 0}
        trials[name] = [
            {"trial": t, "val_f1": g.sort_values("training_iteration")["val_f1"].tolist(),
             "epochs": int(g["training_iteration"].max()),
             "params": _params(settings.exp_dir / t)}
            for t, g in frame.groupby("trial")] if len(frame) else []

    grid = curves["grid"]
    grid_best = float(grid["best_f1"].iloc[-1]) if len(grid) else math.nan
    grid_epochs = int(grid["trial_epochs"].iloc[-1]) if len(grid) else 0
    grid_seconds = float(grid["trial_seconds"].iloc[-1]) if len(grid) else math.nan
    rows = []
    for name, c in curves.items():
        s = summary[name]
        e, sec = compute_to_reach(c, grid_best) if len(c) else (math.inf, math.inf)
        s.update({
            "method": name, "trial_epochs": int(c["trial_epochs"].iloc[-1]) if len(c) else 0,
            "trial_seconds": float(c["trial_seconds"].iloc[-1]) if len(c) else 0.0,
            "best_val_f1": float(c["best_f1"].iloc[-1]) if len(c) else math.nan,
            "epochs_to_grid_best": e, "seconds_to_grid_best": sec,
            "fraction_of_grid_epochs": e / grid_epochs if grid_epochs else math.nan,
            "fraction_of_grid_seconds": sec / grid_seconds if grid_seconds else math.nan,
            "curve": [[int(a), float(b)] for a, b in zip(c["trial_epochs"], c["best_f1"],
                                                         strict=True)]
            if len(c) else [],
        })
        rows.append(s)

    png = opts.out / "efficiency.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    title = (f"{data.name}, width {SCALE['width']}, {SCALE['image_size']} px, cap "
             f"{p['max_epochs']} epochs{' (quick: a smoke run)' if opts.quick else ''}")
    _plot(curves, {k: v["label"] for k, v in summary.items()}, grid_best, grid_epochs, title,
          png)
    tpe = summary["tpe-asha"]["fraction_of_grid_epochs"]
    tpe_default = summary["tpe-asha-default"]["fraction_of_grid_epochs"]
    target = {"rule": "TPE + ASHA reaches the grid's best val F1 with <= 1/4 of the grid's "
                      "trial-epochs", "fraction": tpe, "met": bool(tpe <= 0.25),
              "with_default_first": {"fraction": tpe_default, "met": bool(tpe_default <= 0.25)}}
    print(fmt_table(rows, {
        "method": "method", "trials": "trials", "trial_epochs": "trial-epochs",
        "trial_seconds": "trial-s", "wall_seconds": "wall s", "best_val_f1": "best val F1",
        "epochs_to_grid_best": "epochs to grid best",
        "fraction_of_grid_epochs": "x grid epochs", "fraction_of_grid_seconds": "x grid trial-s"}))
    print(f"grid's best val F1 {grid_best:.4f}; target (<= 0.25 of the grid's trial-epochs): "
          f"TPE + ASHA {'met' if target['met'] else 'NOT met'} ({tpe:.3g}); with the default "
          f"config first {'met' if tpe_default <= 0.25 else 'NOT met'} ({tpe_default:.3g}); "
          f"plot: {png}")
    return {
        "scaling": {**SCALE, "note": "every method at this width and image size; grid points "
                    "keep arch/optimizer/lr/alpha/batch_norm/head, other hyperparameters at "
                    "TrainConfig defaults"},
        "data": str(data), "epoch_cap": p["max_epochs"], "params": p,
        "grid_best_val_f1": grid_best, "grid_trial_epochs": grid_epochs,
        "methods": rows, "trials": trials, "target": target, "plot": str(png),
        "runs": str(root),
    }
