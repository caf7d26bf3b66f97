"""What more faces buy: validation F1 against the number of training faces.

The exported model trains on train+val and is tested on the test split; a final refit on
every labelled face (test included) would add about a sixth more faces but could no
longer be tested. Whether that is worth it is read off a learning curve measured on the
validation split: one configuration trained on growing shares of the training split
(whole identities drawn at random), a power law fitted to the error, and its prediction
for the refit's size.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, job_pool, train_job
from benchmarks.schedule import CONFIGS

__all__ = ["run"]

FULL = {"config": "adam-64px", "epochs": 15, "fractions": (0.5, 0.75, 1.0), "draws": 1}
QUICK = {"config": "default-64px", "epochs": 2, "fractions": (0.5, 1.0), "draws": 1,
         "overrides": {"image_size": 32, "width": 0.125}}


def run(opts: Options) -> dict:
    from gender.config import TrainConfig
    from gender.pipeline import prepare

    data = data_dir(opts, "learning_curve")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    cfg = TrainConfig(**{**CONFIGS[p["config"]], **p.get("overrides", {}),
                         "epochs": p["epochs"]}).to_dict()
    jobs = [(f, d) for f in p["fractions"] for d in range(p["draws"] if f < 1 else 1)]
    print(f"learning_curve: {p['config']}, {p['epochs']} epochs, shares of the training split "
          f"{', '.join(map(str, p['fractions']))}; {len(jobs)} runs on {data}", flush=True)
    with job_pool() as pool:
        futures = {j: pool.submit(train_job, str(data), cfg, ("train",), None, "val", j[0], j[1])
                   for j in jobs}
        runs = {j: f.result() for j, f in futures.items()}
    rows = []
    for f in p["fractions"]:
        mine = [r for (g, _), r in runs.items() if g == f]
        rows.append({"fraction": f, "n_train": float(np.mean([r["n_train"] for r in mine])),
                     "val_f1_best": float(np.mean([max(r["val_f1_curve"]) for r in mine])),
                     "val_f1_last": float(np.mean([r["val_f1_curve"][-1] for r in mine]))})
    # error = a * n^-b, fitted on the best-epoch validation error.
    n = np.array([r["n_train"] for r in rows])
    err = np.array([1 - r["val_f1_best"] for r in rows])
    slope, intercept = np.polyfit(np.log(n), np.log(np.maximum(err, 1e-6)), 1)
    sizes = prepare(data, 32).splits["split"].value_counts().to_dict()
    train_val = sizes.get("train", 0) + sizes.get("val", 0)
    everything = train_val + sizes.get("test", 0)

    def predicted(size: float) -> float:
        return float(1 - np.exp(intercept) * size ** slope)

    gain = predicted(everything) - predicted(train_val)
    print(fmt_table(rows, {"fraction": "share of train", "n_train": "faces",
                           "val_f1_best": "val F1 (best epoch)", "val_f1_last": "val F1 (last)"}))
    print(f"learning_curve: error ~ n^{slope:.2f}; predicted F1 at train+val ({train_val}) "
          f"{predicted(train_val):.4f}, at every labelled face ({everything}) "
          f"{predicted(everything):.4f}: a refit would buy {gain * 100:+.2f} points")
    return {"data": str(data), "config": cfg, "rows": rows, "exponent": float(slope),
            "train_val": train_val, "all_labelled": everything,
            "predicted_gain_of_refit": gain,
            "runs": [{"fraction": f, "draw": d, **r} for (f, d), r in runs.items()]}
