"""What averaging training seeds buys: one configuration trained with several seeds on the
training split, and every average of k of them read on the validation split.

The retrain exports the best configuration trained with `--seeds` seeds (the trial's own
first). From scratch on a few thousand faces one seed's validation accuracy moves by more
than a point; an average of seeds moves less and sits higher. This measures both: each
seed alone, and the mean (and range) over every subset of k seeds, with the mirrored
picture as the export uses it, plus each recipe's calibration error.

`--experiment results/NAME` asks the same of a finished `gender tune`'s best trial: its
configuration, to its peak epoch as its retrain trains it, on the experiment's own split,
with its trial's seed and three more; and what the same spend one image size up (32 px
more a side) buys on the first two seeds: where more training of the best configuration
would take an export.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, job_pool, train_job

__all__ = ["run", "best_trial"]

# The default configuration, its 20-epoch schedule stopped at epoch 12: where its trial's
# validation F1 peaked on the CelebA faces, so where its retrain stops.
FULL = {"epochs": 20, "until": 12, "seeds": 6, "overrides": {}}
QUICK = {"epochs": 2, "until": 2, "seeds": 3, "overrides": {"image_size": 32, "width": 0.125}}
# --experiment: seeds of its best trial's configuration, and how many of them again one
# size up.
EXPERIMENT = {"seeds": 4, "larger": 2}


def best_trial(path: str) -> dict:
    """A finished experiment's best trial, as its retrain plans it: configuration, peak
    epoch, and where its data and split are."""
    from tuning.experiment import search_results
    from tuning.retrain import retrain_plan
    from tuning.settings import TuneSettings

    exp = Path(path)
    settings = TuneSettings.load(exp)
    best = retrain_plan(search_results(settings), settings, limit=1)[0]
    return {"trial_id": best["trial_id"], "config": best["config"], "until": best["until"],
            "data": str(settings.data),
            "split": {"split_seed": settings.split_seed, "splits_csv": str(exp / "splits.csv")}}


def run(opts: Options) -> dict:
    from gender.config import TrainConfig
    from gender.ensemble import combine
    from gender.metrics import binary_metrics, calibration

    trial = best_trial(opts.experiment) if opts.experiment else None
    if trial:
        data, base, until, split = trial["data"], trial["config"], trial["until"], trial["split"]
        seeds = [(base["seed"] + i) % 2**32 for i in range(EXPERIMENT["seeds"])]
        # One size up, where the configuration allows one (image sizes stop at 512 px).
        larger = ({**base, "image_size": base["image_size"] + 32}
                  if base["image_size"] + 32 <= 512 else None)
        what = f"{opts.experiment}'s best trial {trial['trial_id']}"
    else:
        data = data_dir(opts, "seeds")
        if data is None:
            return {"skipped": f"--real: {REAL_DATA} is absent"}
        p = QUICK if opts.quick else FULL
        base = TrainConfig(**{**p["overrides"], "epochs": p["epochs"]}).to_dict()
        until, split, larger = p["until"], {}, None
        seeds = list(range(p["seeds"]))
        what = "the default configuration"
    up = seeds[:EXPERIMENT["larger"]] if larger else []
    print(f"seeds: {what} ({until} of {base['epochs']} scheduled epochs) with seeds {seeds}"
          + (f", and seeds {up} at {larger['image_size']} px" if up else "")
          + f", on the training split of {data}", flush=True)
    with job_pool() as pool:
        futures = [pool.submit(train_job, str(data), {**cfg, "seed": s}, ("train",), until,
                               "val", views=True, **split)
                   for cfg, s in [(base, s) for s in seeds] + [(larger, s) for s in up]]
        done = [f.result() for f in futures]
    runs, up_runs = done[:len(seeds)], done[len(seeds):]
    views, y = [r["views"] for r in runs], runs[0]["labels"].astype(int)

    def scores(prob: np.ndarray) -> dict:
        c = calibration(y, prob)
        return {"accuracy": binary_metrics(y, prob)["accuracy"], "ece": c["ece"],
                "nll": c["nll"]}

    def averaged(members: list[np.ndarray]) -> dict:
        """Scores of the members' mean P(male) over each picture and its mirror image, as
        the export averages its members."""
        return scores(combine(members, len(members), tta=True))

    # Every subset of the seeds, averaged with the flip.
    scored = {c: averaged([views[i] for i in c])
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
    out = {"data": str(data), "config": base, "until": until, "n_val": int(len(y)),
           "single": single, "rows": rows, "pairs": pairs, "gain_of_two_seeds": gain,
           "pairs_above_their_seeds": better, "pairs_with_lower_nll": lower_nll,
           "train_seconds": [r["seconds"] for r in runs]}
    if trial:
        out["experiment"], out["trial_id"] = opts.experiment, trial["trial_id"]
    if up_runs:
        own = [scored[(i,)]["accuracy"] for i in range(len(up))]
        bigger = [averaged([r["views"]])["accuracy"] for r in up_runs]
        pair = averaged([r["views"] for r in up_runs])
        cost = np.mean([r["seconds"] for r in up_runs]) / np.mean(out["train_seconds"][:len(up)])
        out["larger"] = {"image_size": larger["image_size"], "seeds": up, "accuracy": bigger,
                         "accuracy_at_own_size": own, "average": pair["accuracy"],
                         "average_at_own_size": scored[tuple(range(len(up)))]["accuracy"],
                         "train_seconds": [r["seconds"] for r in up_runs],
                         "time_ratio": float(cost)}
        print(f"seeds: at {larger['image_size']} px, seeds {up} with the flip "
              f"{', '.join(f'{a:.4f}' for a in bigger)} (at {base['image_size']} px "
              f"{', '.join(f'{a:.4f}' for a in own)}), averaged {pair['accuracy']:.4f} "
              f"({out['larger']['average_at_own_size']:.4f}), for {cost:.1f} times the "
              f"training time")
    return out
