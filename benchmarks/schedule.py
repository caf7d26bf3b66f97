"""The retrain's learning-rate schedule: the trial's own, stopped at its peak, or a whole
schedule compressed into the peak's epochs?

A trial runs a cosine over `--max-epochs` and peaks at epoch k. The retrain can either
(a) train the trial's exact configuration and stop at epoch k of that same schedule, or
(b) train a schedule that ends at k (the cosine compressed into k epochs). Which is better
is decided on the validation split, never the test: each configuration is trained on the
training split with the full schedule (its curve gives k and, since a trial is
deterministic, (a)'s validation F1 at k), and again with (b)'s compressed schedule. Then,
for the record, both retrains are run on train+val and tested once.

Every run is the project's one training loop (`Trainer`), one thread per process, two
processes at a time.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, job_pool, train_job

__all__ = ["run", "CONFIGS"]

# Configurations the CelebA searches found (the README's run table): the winner of both
# 1500 s runs, the runner-up of an earlier one, and the package's default.
CONFIGS = {
    "best-96px": dict(arch="vgg11", batch_norm=True, width=0.25, head="gap", optimizer="adamw",
                      lr=4.9e-4, weight_decay=1.1e-4, dropout=0.19, augment=0.20,
                      image_size=96, batch_size=64),
    "adam-64px": dict(arch="vgg11", batch_norm=True, width=0.25, head="gap", optimizer="adam",
                      lr=2.1e-3, weight_decay=8.1e-3, dropout=0.13, augment=0.08,
                      image_size=64, batch_size=64),
    "default-64px": {},
}
FULL = {"max_epochs": 20, "configs": list(CONFIGS)}
QUICK = {"max_epochs": 3, "configs": ["default-64px"], "overrides": {"image_size": 32,
                                                                       "width": 0.125}}


def run(opts: Options) -> dict:
    from gender.config import TrainConfig

    data = data_dir(opts, "schedule")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    configs = {name: TrainConfig(**{**CONFIGS[name], **p.get("overrides", {}),
                                   "epochs": p["max_epochs"]}).to_dict()
               for name in p["configs"]}
    print(f"schedule: {len(configs)} configurations, a {p['max_epochs']}-epoch cosine each, "
          f"on {data}; 2 processes x 1 thread", flush=True)
    with job_pool() as pool:
        # 1. The trial: the full schedule on train; its curve gives the peak epoch k.
        trials = {n: pool.submit(train_job, str(data), c, ("train",), None, "val")
                  for n, c in configs.items()}
        trials = {n: f.result() for n, f in trials.items()}
        peaks = {n: int(np.argmax(t["val_f1_curve"])) + 1 for n, t in trials.items()}
        jobs = {}
        for n, c in configs.items():
            k = peaks[n]
            short = {**c, "epochs": k}
            jobs[n] = {
                # 2. (b) on train, judged on val: the decision.
                "compressed_val": pool.submit(train_job, str(data), short, ("train",), None, "val"),
                # 3. Both retrains on train+val, tested once: for the record.
                "trial_test": pool.submit(train_job, str(data), c, ("train", "val"), k, "test"),
                "compressed_test": pool.submit(train_job, str(data), short, ("train", "val"), None,
                                               "test"),
            }
        jobs = {n: {k: f.result() for k, f in js.items()} for n, js in jobs.items()}
    rows = []
    for n in configs:
        t, j, k = trials[n], jobs[n], peaks[n]
        rows.append({
            "config": n, "peak_epoch": k,
            "val_f1_trial_schedule": t["val_f1_curve"][k - 1],
            "val_f1_compressed": j["compressed_val"]["val_f1_curve"][-1],
            "test_acc_trial_schedule": j["trial_test"]["final"]["accuracy"],
            "test_acc_compressed": j["compressed_test"]["final"]["accuracy"],
            "test_f1_trial_schedule": j["trial_test"]["final"]["f1"],
            "test_f1_compressed": j["compressed_test"]["final"]["f1"],
            "val_f1_curve": t["val_f1_curve"], "runs": {"trial": t, **j},
        })
    for r in rows:
        r["val_gain_trial_schedule"] = r["val_f1_trial_schedule"] - r["val_f1_compressed"]
    mean_gain = float(np.mean([r["val_gain_trial_schedule"] for r in rows]))
    winner = "trial schedule, stopped at the peak" if mean_gain >= 0 else "compressed"
    print(fmt_table(rows, {"config": "config", "peak_epoch": "peak epoch k",
                           "val_f1_trial_schedule": "val F1 (a) trial's schedule to k",
                           "val_f1_compressed": "val F1 (b) compressed into k",
                           "test_acc_trial_schedule": "test acc (a)",
                           "test_acc_compressed": "test acc (b)"}))
    print(f"schedule: mean validation F1 gain of (a) over (b): {mean_gain:+.4f} -> {winner}")
    return {"data": str(data), "max_epochs": p["max_epochs"], "rows": rows,
            "mean_val_gain_trial_schedule": mean_gain, "winner": winner}
