"""Is a change to the default training recipe worth making? Paired by seed, on validation.

The default configuration and each variant of it (one `TrainConfig` field changed) train
with the same seeds on the training split, for the epochs at which the default's trial
peaks on the CelebA faces, and are scored on the validation split with the flip, as the
export scores them. Seed for seed the two runs share initialisation, batch order and
augmentation draws, so their difference is the change's effect plus what the change does
to the rest of the run; its mean, spread and sign count over the seeds say whether the
change pays. The validation F1 at epoch 2 is ASHA's first rung: a change that learns
slower there is cut more often in a search.
"""

from __future__ import annotations

import math

import numpy as np

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, job_pool, train_job

__all__ = ["run", "paired"]

# The default configuration's 20-epoch schedule stopped at epoch 12 (as `seeds`), and the
# variants measured against it.
FULL = {"epochs": 20, "until": 12, "seeds": 8, "overrides": {},
        "variants": {"mixup 0.2": {"mixup": 0.2}}}
QUICK = {"epochs": 2, "until": 2, "seeds": 2, "overrides": {"image_size": 32, "width": 0.125},
         "variants": {"mixup 0.2": {"mixup": 0.2}}}
RUNG = 2  # ASHA's first rung (`--grace-period`)


def paired(base: list[float], variant: list[float]) -> dict:
    """The variant minus the base, seed by seed: mean, standard deviation, a paired t
    statistic and the count of seeds above, equal and below."""
    d = np.asarray(variant, dtype=float) - np.asarray(base, dtype=float)
    sd = float(d.std(ddof=1)) if len(d) > 1 else math.nan
    t = float(d.mean() / (sd / math.sqrt(len(d)))) if len(d) > 1 and sd > 1e-12 else math.nan
    return {"mean": float(d.mean()), "sd": sd, "t": t, "above": int((d > 1e-9).sum()),
            "equal": int((abs(d) <= 1e-9).sum()), "below": int((d < -1e-9).sum())}


def run(opts: Options) -> dict:
    from gender.config import TrainConfig
    from gender.metrics import binary_metrics, calibration

    if not (opts.real or opts.quick):
        # Its question is about real faces: on the synthetic ones its 16 runs would only
        # lengthen `make bench`.
        print("recipes: a question about real faces: run it with --real (or --quick)")
        return {"skipped": "run with --real (or --quick for a smoke run)"}
    data = data_dir(opts, "recipes")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    recipes = {"default": {}, **p["variants"]}
    seeds = list(range(p["seeds"]))
    print(f"recipes: the default configuration ({p['until']} of {p['epochs']} scheduled "
          f"epochs) and {', '.join(p['variants'])}, seeds {seeds}, on the training split of "
          f"{data}", flush=True)
    with job_pool() as pool:
        futures = {(name, s): pool.submit(
            train_job, str(data),
            TrainConfig(**{**p["overrides"], **over, "epochs": p["epochs"], "seed": s}).to_dict(),
            ("train",), p["until"], "val", views=True)
            for name, over in recipes.items() for s in seeds}
        runs = {k: f.result() for k, f in futures.items()}
    y = runs[("default", 0)]["labels"].astype(int)
    rows = []
    for (name, s), r in runs.items():
        prob = r["views"].mean(axis=0)  # with the flip, as exported
        c = calibration(y, prob)
        curve = r["val_f1_curve"]
        rows.append({"recipe": name, "seed": s, "accuracy": binary_metrics(y, prob)["accuracy"],
                     "nll": c["nll"], "ece": c["ece"],
                     "f1_at_rung": curve[RUNG - 1] if len(curve) >= RUNG else None,
                     "val_f1_curve": curve, "seconds": r["seconds"]})

    def column(name: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["recipe"] == name]

    summary = [{"recipe": name, "seeds": len(seeds),
                **{f"{k}_mean": float(np.mean(column(name, k)))
                   for k in ("accuracy", "nll", "ece", "f1_at_rung")}}
               for name in recipes]
    versus = {name: {k: paired(column("default", k), column(name, k))
                     for k in ("accuracy", "nll", "f1_at_rung")} for name in p["variants"]}
    print(fmt_table(summary, {"recipe": "recipe", "seeds": "seeds",
                              "accuracy_mean": "val acc + flip (mean)",
                              "nll_mean": "NLL (mean)", "ece_mean": "ECE (mean)",
                              "f1_at_rung_mean": f"val F1 at epoch {RUNG} (mean)"}))
    for name, v in versus.items():
        a = v["accuracy"]
        print(f"recipes: {name} vs default: accuracy {a['mean'] * 100:+.2f} points "
              f"(sd {a['sd'] * 100:.2f}, paired t {a['t']:.2f}; seeds above/equal/below "
              f"{a['above']}/{a['equal']}/{a['below']}), NLL {v['nll']['mean']:+.3f}, "
              f"F1 at epoch {RUNG} {v['f1_at_rung']['mean']:+.3f}")
    return {"data": str(data), "until": p["until"], "epochs": p["epochs"], "seeds": seeds,
            "recipes": recipes, "n_val": int(len(y)), "runs": rows, "summary": summary,
            "versus_default": versus}
