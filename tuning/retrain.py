"""Retrain the best configuration on train+val, test it once, export it to `best/`."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from gender.engine import Trainer, resolve_device
from gender.errors import UserError
from gender.export import load_model
from gender.io import check_writable_dir, read_table, write_json
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
    # Everything is checked before training: the device, the table, where best/ goes.
    torch_device = resolve_device(device)
    out = check_writable_dir(exp / "best", "output folder")
    best = pick_best(read_table(trials, "trials table",
                                ("trial_id", "status", "best_val_f1", "best_epoch",
                                 "best_latency_ms_p50")))
    if best is None:
        raise UserError(f"{trials}: no trial finished without diverging or erroring")
    params = {k: v for k, v in best.items() if isinstance(k, str) and pd.notna(v)}
    where = f"{trials}: trial {best['trial_id']}"
    # pandas widens ints to floats when other rows miss them; TrainConfig wants ints back.
    for k in ("batch_size", "image_size", "best_epoch"):
        try:
            params[k] = int(params[k])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{where}: {k} must be a whole number, got "
                            f"{params.get(k)!r}") from None
    params["batch_norm"] = str(params.get("batch_norm")).lower() in ("true", "1", "1.0")
    try:
        cfg = trial_config({**params, "epochs": params["best_epoch"], "seed": settings.seed})
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: not a configuration to retrain ({e})") from None
    if not quiet:
        print(f"retraining trial {best['trial_id']} on train+val for {cfg.epochs} epochs "
              f"(its validation F1 peaked at {best['best_val_f1']:.4f})")
    prep = prepare(settings.data, cfg.image_size, splits_csv=exp / "splits.csv")
    trainer = Trainer(cfg, prep.data, torch_device, train_split=("train", "val"),
                      eval_split=None)
    t0 = time.perf_counter()
    trainer.fit()
    metrics = finish_run(trainer, prep, out, time.perf_counter() - t0, extra={
        "trial_id": str(best["trial_id"]), "val_f1_in_tuning": float(best["best_val_f1"]),
        "trained_on": "train+val", "n_train": int(len(trainer.train_idx))})
    load_model(out / "model.pt")  # the file we just wrote must load the safe way
    write_json(metrics, out / "metrics.json")
    return metrics
