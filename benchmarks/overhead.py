"""Harness overhead: one configuration trained by the plain loop in-process (the path of
`gender train`) and as the single trial of a Ray Tune run (`train_trial` via `build_tuner`).

Both get every core as torch threads (the trial is given all CPUs, and `train_trial`
sets its threads to what Ray assigned). Runs alternate plain/Ray/Ray/plain/... so a drift
in the machine's load falls on both sides alike; beside the mean the median and the best
epoch are reported, which other work on a shared machine disturbs less.
"""

from __future__ import annotations

import os
import time

import numpy as np
import ray
import torch

from benchmarks.common import (
    REAL_DATA,
    Options,
    data_dir,
    fmt_table,
    set_threads,
    trial_frames,
    tune_once,
)
from gender.config import TrainConfig
from gender.engine import Trainer
from gender.pipeline import prepare
from tuning.settings import TuneSettings
from tuning.space import SEARCHABLE, validate_space

__all__ = ["run", "CONFIG"]

CONFIG = TrainConfig(arch="vgg11", batch_norm=True, width=0.25, head="gap", image_size=32,
                     batch_size=64, seed=0)
FULL = {"epochs": 4, "order": ("plain", "ray", "ray", "plain", "plain", "ray")}
QUICK = {"epochs": 3, "order": ("plain", "ray")}


def _plain(cfg: TrainConfig, data) -> dict:
    t0 = time.perf_counter()
    prep = prepare(data, cfg.image_size, crop=cfg.crop)
    history = Trainer(cfg, prep.data, torch.device("cpu")).fit()
    wall = time.perf_counter() - t0
    return {"images_per_s": [h["images_per_s"] for h in history],
            "epoch_seconds": [h["epoch_seconds"] for h in history], "wall_seconds": wall,
            "n_train": len(prep.data.splits["train"])}


def _ray(cfg: TrainConfig, data, root, name: str, threads: int) -> dict:
    space = validate_space({k: v for k, v in cfg.to_dict().items() if k in SEARCHABLE})
    settings = TuneSettings(data=str(data), name=name, results=str(root.resolve()),
                            num_samples=1, max_epochs=cfg.epochs, scheduler="fifo",
                            cpus_per_trial=float(threads), seed=cfg.seed, space=space,
                            retrain=False)
    t0 = time.perf_counter()
    try:
        tune_once(settings)
    finally:
        ray.shutdown()  # the plain runs must not share the cores with idle Ray processes
    wall = time.perf_counter() - t0
    df = trial_frames(settings.exp_dir).sort_values("training_iteration")
    if not len(df):
        raise RuntimeError(f"overhead: the Ray trial reported nothing ({settings.exp_dir})")
    # time_this_iter_s: the epoch as Ray saw it, the per-epoch checkpoint included.
    return {"images_per_s": df["images_per_s"].tolist(),
            "epoch_seconds": df["time_this_iter_s"].tolist(), "wall_seconds": wall}


def run(opts: Options) -> dict:
    data = data_dir(opts, "overhead")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    cfg = CONFIG.replace(epochs=p["epochs"])
    threads = set_threads()
    root = opts.runs / "overhead"
    print(f"overhead: {cfg.model_name} width {cfg.width} {cfg.image_size} px batch "
          f"{cfg.batch_size}, {cfg.epochs} epochs a run, {threads} threads on both sides, "
          f"order {'/'.join(p['order'])}; data {data}", flush=True)
    runs = []
    for i, side in enumerate(p["order"]):
        load = os.getloadavg()[0]
        r = _plain(cfg, data) if side == "plain" else _ray(cfg, data, root, f"ray-{i}", threads)
        r.update(side=side, loadavg_1m=[load, os.getloadavg()[0]])  # before, after
        runs.append(r)
        print(f"overhead: {side}: images/s by epoch "
              + ", ".join(f"{v:.0f}" for v in r["images_per_s"]), flush=True)
    n_train = next(r["n_train"] for r in runs if "n_train" in r)
    rows = []
    for side in ("plain", "ray"):
        mine = [r for r in runs if r["side"] == side]
        later = [v for r in mine for v in r["images_per_s"][1:]]  # epochs after the first
        secs = float(np.mean([v for r in mine for v in r["epoch_seconds"][1:]]))
        rows.append({"side": side, "label": "plain loop (gender train)" if side == "plain"
                     else "Ray Tune trial (train_trial)", "images_per_s": float(np.mean(later)),
                     "median_images_per_s": float(np.median(later)),
                     "best_images_per_s": float(np.max(later)),
                     "spread": float(np.std(later) / np.mean(later)),
                     "epoch_seconds": secs, "epoch_images_per_s": n_train / secs,
                     "wall_seconds": float(np.mean([r["wall_seconds"] for r in mine]))})
    plain, ray_ = rows
    for r in rows:
        for k in ("images_per_s", "median_images_per_s", "best_images_per_s"):
            r[f"x_{k}"] = r[k] / plain[k]
    ratio = ray_["x_images_per_s"]
    epoch_ratio = ray_["epoch_images_per_s"] / plain["epoch_images_per_s"]
    print(fmt_table(rows, {"label": "side", "images_per_s": "train images/s (mean, epochs 2+)",
                           "x_images_per_s": "x plain", "x_median_images_per_s": "x (median)",
                           "x_best_images_per_s": "x (best epoch)",
                           "spread": "epoch-to-epoch CV",
                           "epoch_seconds": "s/epoch (eval, ckpt incl.)",
                           "wall_seconds": "run wall s (startup incl.)"}))
    met = bool(ratio >= 0.95)
    print(f"harness keeps {ratio:.1%} of the plain loop's training images/s (target >= 95%: "
          f"{'met' if met else 'NOT met'}; median {ray_['x_median_images_per_s']:.1%}, best "
          f"epoch {ray_['x_best_images_per_s']:.1%}); a whole epoch with evaluation and "
          f"checkpoint {epoch_ratio:.1%}")
    return {"config": cfg.to_dict(), "threads": threads, "data": str(data), "runs": runs,
            "sides": rows, "ratio": ratio, "epoch_ratio": epoch_ratio,
            "target": {"rule": "Ray trial images/s (mean of epochs after the first) >= 95% of "
                               "the plain loop's", "met": met}}
