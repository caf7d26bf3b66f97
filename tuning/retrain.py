"""Retrain the best configuration on train+val, test it once, export it to `best/`."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from gender.engine import Trainer, resolve_device
from gender.errors import UserError
from gender.export import load_model
from gender.io import write_json
from gender.pipeline import finish_run, prepare
from tuning.settings import TuneSettings
from tuning.space import trial_config

__all__ = ["retrain_best"]


def retrain_best(exp_dir: str | Path, device: str = "auto", quiet: bool = False) -> dict:
    """Pick the best row of `trials.csv`, retrain it for the epochs at which it peaked,
    write `best/` (model.pt, model.ts, config.json, metrics.json, splits.csv)."""
    from tuning.outputs import pick_best

    exp = Path(exp_dir)
    settings = TuneSettings.load(exp)
    trials = exp / "trials.csv"
    if not trials.is_file():
        raise UserError(f"{exp}: no trials.csv (the tuning run did not finish)")
    best = pick_best(pd.read_csv(trials, dtype={"trial_id": str}))
    if best is None:
        raise UserError(f"{trials}: no trial finished without diverging or erroring")
    params = {k: v for k, v in best.items() if isinstance(k, str) and pd.notna(v)}
    # pandas widens ints to floats when other rows miss them; TrainConfig wants ints back.
    for k in ("batch_size", "image_size"):
        params[k] = int(params[k])
    params["batch_norm"] = bool(params["batch_norm"])
    cfg = trial_config({**params, "epochs": int(best["best_epoch"]), "seed": settings.seed})
    if not quiet:
        print(f"retraining trial {best['trial_id']} on train+val for {cfg.epochs} epochs "
              f"(its validation F1 peaked at {best['best_val_f1']:.4f})")
    prep = prepare(settings.data, cfg.image_size, splits_csv=exp / "splits.csv")
    trainer = Trainer(cfg, prep.data, resolve_device(device), train_split=("train", "val"),
                      eval_split=None)
    t0 = time.perf_counter()
    trainer.fit()
    out = exp / "best"
    metrics = finish_run(trainer, prep, out, time.perf_counter() - t0, extra={
        "trial_id": str(best["trial_id"]), "val_f1_in_tuning": float(best["best_val_f1"]),
        "trained_on": "train+val", "n_train": int(len(trainer.train_idx))})
    load_model(out / "model.pt")  # the file we just wrote must load the safe way
    write_json(metrics, out / "metrics.json")
    return metrics
