"""What averaging training seeds buys: one configuration trained with several seeds on the
training split, and every average of k of them read on the validation split.

The retrain exports the best configuration trained with `--seeds` seeds (the trial's own
first). From scratch on a few thousand faces one seed's validation accuracy moves by more
than a point; an average of seeds moves less and sits higher. This measures both: each
seed alone, and the mean (and range) over every subset of k seeds, with the mirrored
picture as the export uses it, plus each recipe's calibration error.
"""

from __future__ import annotations

import itertools

import numpy as np

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, job_pool, train_job

__all__ = ["run"]

# The default configuration, its 20-epoch schedule stopped at epoch 12: where its trial's
# validation F1 peaked on the CelebA faces, so where its retrain stops.
FULL = {"epochs": 20, "until": 12, "seeds": 6, "overrides": {}}
QUICK = {"epochs": 2, "until": 2, "seeds": 3, "overrides": {"image_size": 32, "width": 0.125}}


def run(opts: Options) -> dict:
    from gender.config import TrainConfig
    from gender.ensemble import combine
    from gender.metrics import binary_metrics, calibration

    data = data_dir(opts, "seeds")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    base = TrainConfig(**{**p["overrides"], "epochs": p["epochs"]}).to_dict()
    seeds = list(range(p["seeds"]))
    print(f"seeds: the default configuration ({p['until']} of {p['epochs']} scheduled epochs) "
          f"with seeds {seeds}, on the training split of {data}", flush=True)
    with job_pool() as pool:
        futures = [pool.submit(train_job, str(data), {**base, "seed": s}, ("train",),
                               p["until"], "val", views=True) for s in seeds]
        runs = [f.result() for f in futures]
    views, y = [r["views"] for r in runs], runs[0]["labels"].astype(int)

    def scores(prob: np.ndarray) -> dict:
        c = calibration(y, prob)
        return {"accuracy": binary_metrics(y, prob)["accuracy"], "ece": c["ece"],
                "nll": c["nll"]}

    # Every subset of the seeds, averaged with the flip as the export averages its members.
    scored = {c: scores(combine([views[i] for i in c], len(c), tta=True))
              for k in range(1, len(seeds) + 1)
              for c in itertools.combinations(range(len(seeds)), k)}
    single = [{"seed": s, "accuracy_plain": scores(views[i][0])["accuracy"], **scored[(i,)]}
              for i, s in enumerate(seeds)]
    # Each pair against its own two seeds alone (their mean): does averaging pay pair by pair?
    pairs = [{"seeds": [seeds[a], seeds[b]], **{
        f"{k}_gain": scored[(a, b)][k] - (scored[(a,)][k] + scored[(b,)][k]) / 2
        for k in ("accuracy", "nll")}} for a, b in itertools.combinations(range(len(seeds)), 2)]
    rows = []
    for k in range(1, len(seeds) + 1):
        subsets = [r for c, r in scored.items() if len(c) == k]
        acc = [r["accuracy"] for r in subsets]
        rows.append({"seeds": k, "subsets": len(subsets), "accuracy_mean": float(np.mean(acc)),
                     "accuracy_min": float(min(acc)), "accuracy_max": float(max(acc)),
                     "ece_mean": float(np.mean([r["ece"] for r in subsets])),
                     "nll_mean": float(np.mean([r["nll"] for r in subsets]))})
    print(fmt_table(single, {"seed": "seed", "accuracy_plain": "val acc",
                             "accuracy": "val acc + flip", "ece": "ECE + flip"}))
    print()
    print(fmt_table(rows, {"seeds": "seeds averaged", "subsets": "subsets",
                           "accuracy_mean": "val acc (mean)", "accuracy_min": "min",
                           "accuracy_max": "max", "ece_mean": "ECE (mean)",
                           "nll_mean": "NLL (mean)"}))
    gain = rows[1]["accuracy_mean"] - rows[0]["accuracy_mean"] if len(rows) > 1 else 0.0
    better = sum(r["accuracy_gain"] > 0 for r in pairs)
    lower_nll = sum(r["nll_gain"] < 0 for r in pairs)
    print(f"seeds: two seeds averaged {gain * 100:+.2f} points of validation accuracy over "
          f"one, on average over {len(seeds)} seeds; {better} of {len(pairs)} pairs above "
          f"their two seeds' mean accuracy, {lower_nll} of {len(pairs)} with a lower NLL")
    return {"data": str(data), "config": base, "until": p["until"], "n_val": int(len(y)),
            "single": single, "rows": rows, "pairs": pairs, "gain_of_two_seeds": gain,
            "pairs_above_their_seeds": better, "pairs_with_lower_nll": lower_nll}
