"""Search efficiency across seeds: our TPE + FlooredASHA against what a user would write.

Every method gets the same budget of trial-epochs on the same tabulated problem
(`benchmarks.search_pool`: full curves of every configuration of a discretised default
space plus the notebook grid, trained once by the project's `Trainer`). Its real searcher
and scheduler objects are replayed against the table in simulated time
(`benchmarks.replay`), once per seed. Then two methods run live through Ray Tune on the
same setup, to check the replay against reality and to measure the Ray stack's overhead.

Methods: the notebook grid; random search; random + our ASHA; our TPE without early
stopping; Ray's documented recipe (`OptunaSearch` + `ASHAScheduler`, nothing of ours);
Optuna alone (TPE + `SuccessiveHalvingPruner`, and TPE + `HyperbandPruner`); ours
(`tuning.experiment.build_search`: TPE + `FlooredASHA`); ours as `gender tune` runs it
(the package's default configuration first: the space holds it); and ours without the
chance floor (Ray's `ASHAScheduler`). Beside them, two bounds: random and TPE proposals
with a stopper that knows the table, the soonest any stopping rule could reach the bar.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, trial_frames, tune_once
from benchmarks.replay import GridMethod, OptunaMethod, OracleStopping, RayMethod, Run, simulate
from benchmarks.search_pool import (
    QUICK_SPACE,
    TRAIN_SEED,
    WIDER,
    Table,
    grid_configs,
    load_or_build,
    pool_configs,
    with_train_seeds,
)
from tuning.settings import TuneSettings
from tuning.space import default_point, define_by_run, trial_config

__all__ = ["run", "FULL", "QUICK", "METHODS", "VERSUS", "BOUNDS", "replay_all", "summarise",
           "make_method", "oracle_bounds", "verdicts"]

# Full: the table of WIDER (VGG11 and VGG19, each with and without batch norm, both heads,
# four optimisers, four learning rates: 128 configurations) and the grid, at a 6-epoch
# cap; rungs at 2 and 4 epochs (grace 2, factor 2: two cuts inside the cap, as the defaults
# put three inside 20 epochs). The budget, 36 trial-epochs, is six full trainings: random
# search sees a twenty-first of the space, the grid its first 6 points. Two workers, as the
# machine's two cores run two one-CPU trials. A replayed seed costs a fraction of a second,
# so 200 of them: medians over a few dozen move with the draw of seeds by as much as the
# differences between methods. Every configuration is tabulated at two training seeds and
# replay seed s reads the curves of training seed s mod 2, so that one draw of the training
# noise (which configurations happen to train well) does not decide the comparison.
FULL = {"space": WIDER, "grid_every": 1, "cap": 6, "grace_period": 2, "reduction_factor": 2,
        "budget": 36, "workers": 2, "seeds": 200, "train_seeds": 2, "jitter": 0.1,
        "live_trials": 6, "bohb_seeds": 5}
# Quick: a smoke run of the same code on 8 configurations and a quarter of the grid.
QUICK = {"space": QUICK_SPACE, "grid_every": 4, "cap": 2, "grace_period": 1,
         "reduction_factor": 2, "budget": 12, "workers": 2, "seeds": 2, "train_seeds": 1,
         "jitter": 0.1, "live_trials": 3, "bohb_seeds": 1}

METHODS = {
    "grid": "notebook grid (12 configs to the cap)",
    "random": "random search, no early stopping",
    "random-asha": "random search + our ASHA",
    "tpe": "our TPE, no early stopping",
    "ray-asha": "Ray's recipe: OptunaSearch + ASHAScheduler",
    "optuna-sha": "Optuna alone: TPE + SuccessiveHalvingPruner",
    "optuna-hb": "Optuna alone: TPE + HyperbandPruner (its BOHB-like pairing)",
    "ours": "ours: our TPE + FlooredASHA",
    "ours-default-first": "ours as `gender tune` runs it: the default configuration first",
    "ours-plain-asha": "ablation: ours without the chance floor (Ray's ASHAScheduler)",
}
ABLATIONS = ("ours-plain-asha",)  # in the JSON and the table, not in the plot
# How soon any stopping rule could reach random search's final best, given these methods'
# proposals: the stopper knows the table (`OracleStopping`). Not contestants: bounds.
BOUNDS = {"random": "random proposals, oracle stopping",
          "tpe": "our TPE's proposals, oracle stopping"}
# Ours and ours as `gender tune` runs it, each against these (a rank test across seeds).
RIVALS = ("ray-asha", "optuna-sha", "optuna-hb", "random-asha", "tpe")
# Where the summary keeps each of the two's rank tests, by the name printed for it.
VERSUS = {"ours": "ours_versus", "ours as gender tune runs it": "default_first_versus"}


def _settings(p: dict, seed: int, sampler: str = "tpe", scheduler: str = "asha",
              num_samples: int | None = None, **kw) -> TuneSettings:
    # No trial count: the budget alone ends the search, as `gender tune --time-budget`
    # without `--num-samples` (the replay never reads the time budget itself).
    return TuneSettings(data="-", name=f"replay-{seed}", num_samples=num_samples,
                        time_budget=None if num_samples else 1.0, max_epochs=p["cap"],
                        grace_period=p["grace_period"],
                        reduction_factor=p["reduction_factor"], space=p["space"],
                        sampler=sampler, scheduler=scheduler, seed=seed, retrain=False,
                        **kw)


def _ray_asha(p: dict):
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(time_attr="training_iteration", metric="val_f1", mode="max",
                         max_t=p["cap"], grace_period=p["grace_period"],
                         reduction_factor=p["reduction_factor"])


def _constants(p: dict) -> dict:
    return {"epochs": p["cap"], "seed": TRAIN_SEED}


def ray_recipe(p: dict, seed: int, workers: int):
    """Ray's documented OptunaSearch + ASHA example, in our space: the searcher learns from
    the last reported validation F1, ASHA ranks by it; Optuna's default TPE, seeded."""
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=define_by_run(p["space"], _constants(p)), metric="val_f1",
                            mode="max", seed=seed)
    return ConcurrencyLimiter(searcher, max_concurrent=workers), _ray_asha(p)


def make_method(name: str, p: dict, seed: int, table: Table | None = None,
                num_samples: int | None = None):
    """A fresh method object (searcher + scheduler) for one replay."""
    import optuna

    from tuning.experiment import build_search
    from tuning.scheduler import FlooredASHA

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    w = p["workers"]
    if name == "grid":
        return GridMethod(grid_configs(p["cap"])[::p["grid_every"]])
    if name == "ray-asha":
        return RayMethod(*ray_recipe(p, seed, w))
    if name in ("optuna-sha", "optuna-hb"):
        kw = {"min_resource": p["grace_period"], "reduction_factor": p["reduction_factor"]}
        pruner = (optuna.pruners.SuccessiveHalvingPruner(**kw) if name == "optuna-sha" else
                  optuna.pruners.HyperbandPruner(max_resource=p["cap"], **kw))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Named: Hyperband assigns a trial's bracket by a hash of the study's name.
            study = optuna.create_study(
                study_name=f"{name}-{seed}", direction="maximize",
                sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
        return OptunaMethod(study, p["space"], _constants(p))
    sampler = "random" if name.startswith("random") else "tpe"
    scheduler = "fifo" if name in ("random", "tpe") else "asha"
    # `gender tune` enqueues the default configuration unless --no-default-first.
    first = [default_point(p["space"])] if name == "ours-default-first" else []
    search_alg, ours = build_search(_settings(p, seed, sampler, scheduler, num_samples,
                                              enqueue=first), w)
    if name == "ours-plain-asha":
        return RayMethod(search_alg, _ray_asha(p))
    assert isinstance(ours, FlooredASHA) or scheduler == "fifo"
    return RayMethod(search_alg, ours)


def replay_all(table: Table, p: dict, methods=METHODS, seeds: int | None = None) -> dict:
    """{method: [Run per seed]}; seed s replays on the table's s-th tabulation."""
    runs = {}
    for name in methods:
        t0 = time.perf_counter()
        runs[name] = [simulate(make_method(name, p, s), table.tabulation(s),
                               budget=p["budget"], workers=p["workers"], seed=s,
                               jitter=p["jitter"])
                      for s in range(seeds or p["seeds"])]
        print(f"search: replayed {name} x {len(runs[name])} seeds "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return runs


def oracle_bounds(table: Table, p: dict, bar: float, seeds: int | None = None) -> dict:
    """Per entry of BOUNDS: trial-epochs to reach `bar` with that method's proposals and a
    stopper that knows every curve, over the same seeds and tabulations as the replays."""
    out = {}
    for name, label in BOUNDS.items():
        reach = [simulate(OracleStopping(make_method(name, p, s), bar), table.tabulation(s),
                          budget=p["budget"], workers=p["workers"], seed=s,
                          jitter=p["jitter"]).epochs_to_reach(bar)
                 for s in range(seeds or p["seeds"])]
        q = _quartiles(reach)
        out[name] = {"label": label, "epochs_to_random_best": q,
                     "reached_random_best": int(np.isfinite(reach).sum()),
                     "fraction_of_budget": q["median"] / p["budget"]}
    return out


def _quartiles(values) -> dict:
    """Median and quartiles; inf (a target never reached) ranks above every number."""
    v = np.asarray(values, dtype=float)
    if not len(v):
        return {"median": math.nan, "q25": math.nan, "q75": math.nan}
    big = 1e18
    q = np.percentile(np.where(np.isinf(v), big, v), [25, 50, 75])
    q = [math.inf if x >= big / 2 else float(x) for x in q]
    return {"median": q[1], "q25": q[0], "q75": q[2]}


def _padded(r: Run, budget: int) -> np.ndarray:
    """Best so far at every trial-epoch up to the budget (flat after a run that ended
    early: the grid has nothing more to try)."""
    b = np.asarray(r.best or [0.0], dtype=float)
    return np.concatenate([b, np.full(max(0, budget - len(b)), b[-1])])[:budget]


def _versus(a: list[float], b: list[float], higher_is_better: bool) -> dict:
    """Win/tie/loss of `a` against `b` across seeds: a two-sided Mann-Whitney U test
    (p < 0.05) decides between a difference and a tie; the medians say who is ahead."""
    from scipy.stats import mannwhitneyu

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if np.array_equal(np.sort(x), np.sort(y)):
        p_value = 1.0
    else:
        # Unreached targets are inf: ranks handle them, so map them to a large finite value.
        big = 1e9
        p_value = float(mannwhitneyu(np.where(np.isinf(x), big, x), np.where(np.isinf(y), big, y),
                                     alternative="two-sided").pvalue)
    mx, my = float(np.median(x)), float(np.median(y))
    better = mx > my if higher_is_better else mx < my
    verdict = "tie" if p_value >= 0.05 or mx == my else ("win" if better else "loss")
    return {"verdict": verdict, "p_value": p_value, "median": mx, "other_median": my}


def verdicts(c: dict) -> str:
    """One comparison's two rank tests (`_versus` on best F1 and on trial-epochs to random
    search's best) as a sentence, for the printed summary and the README table."""
    f, e = c["final_best"], c["epochs_to_random_best"]
    return (f"best F1 {f['verdict']} (p {f['p_value']:.2g}); trial-epochs to random's best "
            f"{e['verdict']} (p {e['p_value']:.2g})")


def summarise(table: Table, runs: dict, p: dict) -> dict:
    """Per method: every seed's numbers and curve, medians and quartiles; the target."""
    budget = p["budget"]
    pool_best = table.best()
    random_final = [r.best[-1] for r in runs["random"]]
    bar = float(np.median(random_final))
    out = {}
    for name, rs in runs.items():
        final = [r.best[-1] if r.best else 0.0 for r in rs]
        reach = [r.epochs_to_reach(bar) for r in rs]
        quarter = [float(_padded(r, budget)[budget // 4 - 1]) for r in rs]
        curves = np.stack([_padded(r, budget) for r in rs])
        out[name] = {
            "label": METHODS[name], "final_best": _quartiles(final),
            "best_at_quarter_budget": _quartiles(quarter),
            "epochs_to_random_best": _quartiles(reach),
            "reached_random_best": int(np.isfinite(reach).sum()),
            "trials": _quartiles([len(r.trials) for r in rs]),
            # the best curve of the tabulation that seed replayed on
            "found_pool_best": int(sum(abs(f - table.tabulation(s).best()) < 1e-12
                                       for s, f in enumerate(final))),
            "curve_q25": np.percentile(curves, 25, axis=0).round(4).tolist(),
            "curve_median": np.median(curves, axis=0).round(4).tolist(),
            "curve_q75": np.percentile(curves, 75, axis=0).round(4).tolist(),
            "seeds": [{"seed": s, "final_best": f, "epochs_to_random_best": e,
                       "epochs": r.epochs, "trials": r.trials,
                       "best": [round(v, 4) for v in r.best]}
                      for s, (r, f, e) in enumerate(zip(rs, final, reach, strict=True))],
        }
    def versus(mine: str, others) -> dict:
        seeds = out[mine]["seeds"]
        return {other: {
            "final_best": _versus([s["final_best"] for s in seeds],
                                  [s["final_best"] for s in out[other]["seeds"]], True),
            "epochs_to_random_best": _versus(
                [s["epochs_to_random_best"] for s in seeds],
                [s["epochs_to_random_best"] for s in out[other]["seeds"]], False)}
            for other in others if other in out}

    def target(mine: str) -> dict:
        frac = out[mine]["epochs_to_random_best"]["median"] / budget
        return {"fraction": frac, "met": bool(frac <= 0.25)}

    rule = ("reaches random search's final best (median over seeds) with <= 1/4 of its "
            "trial-epochs, median over seeds")
    res = {"pool_best_val_f1": pool_best, "random_final_best_median": bar,
           "methods": out, "ours_versus": versus("ours", (*RIVALS, *ABLATIONS)),
           "target": {"rule": f"ours {rule}", **target("ours")}}
    if "ours-default-first" in out:
        res["default_first_versus"] = versus("ours-default-first", (*RIVALS, "ours"))
        res["target"]["default_first"] = target("ours-default-first")
    return res


def _plot(summary: dict, p: dict, title: str, path, bohb: dict | None = None) -> None:
    from tuning.report_plots import figure, save

    fig = figure(8, 4.8)
    ax = fig.add_subplot()
    x = np.arange(1, p["budget"] + 1)
    for name, m in summary["methods"].items():
        if name in ABLATIONS:
            continue
        line, = ax.step(x, m["curve_median"], where="post", label=m["label"],
                        lw=2.2 if name.startswith("ours") else 1.2)
        ax.fill_between(x, m["curve_q25"], m["curve_q75"], step="post", alpha=0.15,
                        color=line.get_color())
    if bohb and bohb.get("seeds"):
        curves = np.stack([_padded(Run(best=s["best"]), p["budget"]) for s in bohb["seeds"]])
        ax.step(x, np.median(curves, axis=0), where="post", color="black", ls="--", lw=1.2,
                label=f"{bohb['label']}, {len(curves)} seeds (median)")
    ax.axhline(summary["random_final_best_median"], color="grey", ls="--", lw=0.8,
               label="random search's final best (median)")
    ax.axvline(p["budget"] / 4, color="grey", ls=":", lw=0.8, label="1/4 of the budget")
    ax.set_xlabel("trial-epochs spent")
    ax.set_ylabel("best validation F1 so far (median, IQR band)")
    lo = min(m["curve_median"][min(len(m["curve_median"]) - 1, 5)]
             for m in summary["methods"].values())
    ax.set_ylim(max(0.0, lo - 0.05), summary["pool_best_val_f1"] + 0.01)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    save(fig, Path(path))


# --- live: two methods through real Ray Tune runs, against their replays ---------------------

def _live_tuner(name: str, settings: TuneSettings, p: dict):
    """The Tuner of a live run: ours through `build_tuner`; Ray's recipe with the project's
    trainable (one CPU a trial) and nothing else of ours."""
    from ray import tune

    from tuning.experiment import build_tuner, input_views, put_data
    from tuning.trainable import train_trial

    data, _ = put_data(settings, input_views(settings), fresh_splits=True)
    if name == "ours":
        return build_tuner(settings, data, verbose=0)
    search_alg, scheduler = ray_recipe(p, settings.seed, p["workers"])
    return tune.Tuner(
        tune.with_resources(tune.with_parameters(train_trial, data=data), {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=search_alg, scheduler=scheduler,
                                    num_samples=settings.num_samples),
        run_config=tune.RunConfig(name=settings.name, storage_path=settings.storage_path,
                                  verbose=0))


def _live_trials(exp_dir, table: Table) -> list[dict]:
    """Each live trial in the order it started: its configuration's place in the table, its
    per-epoch F1 and timings."""
    import json

    frame = trial_frames(exp_dir)
    out = []
    for trial, g in frame.groupby("trial"):
        g = g.sort_values("training_iteration")
        params = json.loads((exp_dir / trial / "params.json").read_text())
        out.append({"trial": str(g["trial_id"].iloc[0]),
                    "config": table.index(trial_config(params)),
                    "val_f1": g["val_f1"].tolist(), "epoch_seconds": g["epoch_seconds"].tolist(),
                    "iter_seconds": g["time_this_iter_s"].tolist(),
                    "timestamp": g["timestamp"].tolist(),
                    "started": float(g["timestamp"].iloc[0] - g["time_total_s"].iloc[0])})
    out.sort(key=lambda t: t["started"])
    return out


def _diffs_vs_table(trials: list[dict], table: Table) -> list[float]:
    """Per live trial, the largest |F1 - the table's F1| over the epochs it ran."""
    configs = table.configs()
    return [max(abs(a - b["val_f1"]) for a, b in
                zip(t["val_f1"], table.curve(configs[t["config"]]), strict=False))
            for t in trials]


def _live_best_curve(trials: list[dict]) -> list[float]:
    """Best F1 so far after each trial-epoch, epochs ordered by report time (whole seconds;
    ties in creation order)."""
    events = sorted((ts, i, e, f) for i, t in enumerate(trials)
                    for e, (ts, f) in enumerate(zip(t["timestamp"], t["val_f1"], strict=True)))
    return np.maximum.accumulate([f for *_, f in events]).tolist() if events else []


def _start_ray(tries: int = 3) -> None:
    """A local Ray; on a loaded machine its node can time out starting, so try again."""
    import ray

    from tuning.cluster import start_ray

    for i in range(tries):
        try:
            return start_ray(None, quiet=True)
        except Exception as e:  # Ray raises a bare Exception for a node start timeout
            ray.shutdown()
            if i == tries - 1:
                raise
            print(f"search: Ray did not start ({str(e)[:80]}); trying again", flush=True)
            time.sleep(10)


def live_check(name: str, table: Table, p: dict, data, root) -> dict:
    """One live run (`live_trials` trials, seed 0) and its replay (no jitter, same trial
    count): same configurations, same stops, same best? And each live trial's curve
    against the table's curve for its configuration (training seed 0, as the live run)."""
    n = p["live_trials"]
    table = table.tabulation(0)
    settings = TuneSettings(data=str(data), name=f"live-{name}", results=str(root.resolve()),
                            num_samples=n, max_epochs=p["cap"], grace_period=p["grace_period"],
                            reduction_factor=p["reduction_factor"], space=p["space"],
                            seed=TRAIN_SEED, cpus_per_trial=1.0, max_concurrent=p["workers"],
                            retrain=False)
    _start_ray()
    t0 = time.perf_counter()
    if name == "ours":
        tune_once(settings)
    else:
        settings.save()
        _live_tuner(name, settings, p).fit()
    wall = time.perf_counter() - t0
    live = _live_trials(settings.exp_dir, table)
    rep = simulate(make_method(name, p, TRAIN_SEED, num_samples=n), table,
                   budget=10**9, workers=p["workers"], seed=TRAIN_SEED, jitter=0.0,
                   max_trials=n)
    configs = table.configs()
    diffs = _diffs_vs_table(live, table)
    # Live and replayed trials matched by configuration (two trials that start together
    # may swap places live): how many configurations both ran, and how many of those
    # stopped at the same epoch.
    unmatched = [(t["config"], t["epochs"]) for t in rep.trials]
    same_config = same_stop = 0
    for t in live:
        mine = [u for u in unmatched if u[0] == t["config"]]
        if mine:
            u = next((u for u in mine if u[1] == len(t["val_f1"])), mine[0])
            unmatched.remove(u)
            same_config += 1
            same_stop += u[1] == len(t["val_f1"])
    curve = _live_best_curve(live)
    k = min(len(curve), rep.epochs)
    # Per trial-epoch: Ray's time for it, the loop's own time inside Ray, and the table's
    # time for the same epoch (the plain loop, two processes as here).
    iters = [(e, t["iter_seconds"][e], t["epoch_seconds"][e],
              table.curve(configs[t["config"]])[e]["epoch_seconds"])
             for t in live for e in range(len(t["val_f1"]))]
    later = [(i, s) for e, i, s, _ in iters if e > 0]
    first = [i - s for e, i, s, _ in iters if e == 0]
    busy = sum(i for _, i, _, _ in iters)
    out = {
        "method": name, "trials": len(live), "wall_seconds": wall,
        "trial_epochs": sum(len(t["val_f1"]) for t in live),
        "curves_equal_table": sum(d < 1e-9 for d in diffs),
        "max_abs_f1_diff_vs_table": max(diffs) if diffs else math.nan,
        "same_config_as_replay": same_config, "same_stop_as_replay": same_stop,
        "best_live": curve[-1] if curve else math.nan,
        "best_replay": rep.best[-1] if rep.best else math.nan,
        "max_abs_best_so_far_diff": float(np.max(np.abs(np.subtract(curve[:k], rep.best[:k]))))
        if k else math.nan,
        "replay_trial_epochs": rep.epochs,
        "overhead": {
            # report + checkpoint + Ray's bookkeeping, per epoch after the first
            "per_epoch_s": float(np.median([i - s for i, s in later])) if later else math.nan,
            # the first epoch's extra: fetching the data, building the model and optimiser
            "trial_start_s": float(np.median(first)) if first else math.nan,
            # the rest of the wall clock on each slot: launching trials, idle gaps
            "launch_and_idle_per_trial_s": (wall * p["workers"] - busy) / max(1, len(live)),
            "loop_epoch_in_ray_vs_table": float(np.median([s / tab for _, _, s, tab in iters]))
            if iters else math.nan,
        },
        "live": live, "replay": rep.trials,
    }
    print(f"search: live {name}: {out['trials']} trials, {out['trial_epochs']} trial-epochs in "
          f"{wall:.0f} s; curves equal to the table's: {out['curves_equal_table']}/{len(live)}; "
          f"same config as the replay: {out['same_config_as_replay']}, same stop: "
          f"{out['same_stop_as_replay']}; best {out['best_live']:.4f} live vs "
          f"{out['best_replay']:.4f} replay", flush=True)
    return out


# --- live: Ray's BOHB, which the replay cannot run -------------------------------------------

def bohb_space(space: dict, constants: dict):
    """The space as a ConfigSpace (TuneBOHB takes no define-by-run function): a categorical
    per searched parameter, a constant for every fixed one and for `constants`."""
    import ConfigSpace as CS

    cs = CS.ConfigurationSpace(seed=0)
    for name, spec in space.items():
        values = spec["choices"]
        cs.add(CS.Constant(name, values[0]) if len(values) == 1
               else CS.CategoricalHyperparameter(name, values))
    for name, value in constants.items():
        cs.add(CS.Constant(name, value))
    return cs


def native(params) -> dict:
    """A ConfigSpace configuration's values as Python scalars (it hands numpy ones, such as
    np.True_, which TrainConfig refuses)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in dict(params).items()}


def bohb_trial(params: dict, data: dict) -> None:
    """The project's trainable, given Python scalars."""
    from tuning.trainable import train_trial

    train_trial(native(params), data)


def trial_epochs_stopper(budget: int):
    """A Tune stopper that ends the whole run once `budget` epochs of all trials have
    reported (epochs running then may still report; the curve counts the first `budget`)."""
    from ray.tune import Stopper

    class TrialEpochs(Stopper):
        def __init__(self):
            self.seen = 0

        def __call__(self, trial_id, result) -> bool:
            self.seen += 1
            return False

        def stop_all(self) -> bool:
            return self.seen >= budget

    return TrialEpochs()


def live_bohb(table: Table, p: dict, data, root, bar: float) -> dict:
    """Ray's documented BOHB (`TuneBOHB` + `HyperBandForBOHB`, max_t the cap, the
    benchmark's reduction factor) live, `bohb_seeds` seeds, the budget in trial-epochs as
    the replays: it pauses trials and resumes them from their checkpoints, which the replay
    does not emulate. Trials train with training seed 0, so it is compared with the replays
    of that tabulation (even seeds)."""
    try:
        from ray.tune.search.bohb import TuneBOHB
    except ImportError as e:  # hpbandster / ConfigSpace: pip install -e '.[bohb]'
        return {"skipped": f"BOHB needs hpbandster and ConfigSpace ({e}): "
                           "pip install -e '.[bohb]'"}
    from ray import tune
    from ray.tune.schedulers import HyperBandForBOHB
    from ray.tune.search import ConcurrencyLimiter

    from tuning.experiment import input_views, put_data

    table0 = table.tabulation(0)
    _start_ray()
    seeds = []
    for seed in range(p["bohb_seeds"]):
        settings = TuneSettings(data=str(data), name=f"live-bohb-{seed}",
                                results=str(root.resolve()), max_epochs=p["cap"],
                                space=p["space"], seed=TRAIN_SEED, retrain=False)
        settings.save()
        views, _ = put_data(settings, input_views(settings), fresh_splits=True)
        t0 = time.perf_counter()
        # In a ConcurrencyLimiter as Ray's bohb_example writes it (TuneBOHB takes the limit
        # and leaves paused trials out of it). Without one, Ray stages one created trial at
        # a time, and a run the stopper ends while another waits cannot build its results.
        searcher = ConcurrencyLimiter(TuneBOHB(space=bohb_space(p["space"], _constants(p)),
                                               metric="val_f1", mode="max", seed=seed),
                                      max_concurrent=p["workers"])
        tune.Tuner(
            tune.with_resources(tune.with_parameters(bohb_trial, data=views), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=HyperBandForBOHB(time_attr="training_iteration", metric="val_f1",
                                           mode="max", max_t=p["cap"],
                                           reduction_factor=p["reduction_factor"]),
                num_samples=-1),
            run_config=tune.RunConfig(name=settings.name, storage_path=settings.storage_path,
                                      stop=trial_epochs_stopper(p["budget"]), verbose=0),
        ).fit()
        wall = time.perf_counter() - t0
        trials = _live_trials(settings.exp_dir, table0)
        best = _live_best_curve(trials)[:p["budget"]]
        diffs = _diffs_vs_table(trials, table0)
        reach = Run(best=best).epochs_to_reach(bar)
        seeds.append({"seed": seed, "final_best": best[-1] if best else 0.0,
                      "epochs_to_random_best": reach, "epochs": len(best),
                      "trials": len(trials), "wall_seconds": wall,
                      "curves_equal_table": sum(d < 1e-9 for d in diffs),
                      "max_abs_f1_diff_vs_table": max(diffs) if diffs else math.nan,
                      "trial_epochs": [len(t["val_f1"]) for t in trials],
                      "best": [round(v, 4) for v in best]})
        print(f"search: live bohb seed {seed}: {len(trials)} trials, best "
              f"{seeds[-1]['final_best']:.4f}, random's best reached after {reach} "
              f"trial-epochs, {wall:.0f} s; curves equal to the table's "
              f"{seeds[-1]['curves_equal_table']}/{len(trials)}", flush=True)
    final = [s["final_best"] for s in seeds]
    reach = [s["epochs_to_random_best"] for s in seeds]
    return {"label": "Ray's BOHB: TuneBOHB + HyperBandForBOHB (live)", "seeds": seeds,
            "final_best": _quartiles(final), "epochs_to_random_best": _quartiles(reach),
            "reached_random_best": int(np.isfinite(reach).sum())}


def bohb_versus(bohb: dict, summary: dict) -> dict:
    """BOHB's live seeds against each method's replays on the same tabulation (even seeds)."""
    if "seeds" not in bohb:
        return {}
    out = {}
    for name in ("ours", "ours-default-first", "ray-asha", "optuna-sha", "random"):
        rep = [s for s in summary["methods"][name]["seeds"] if s["seed"] % 2 == 0]
        out[name] = {k: _versus([s[k] for s in bohb["seeds"]], [s[k] for s in rep], hib)
                     for k, hib in (("final_best", True), ("epochs_to_random_best", False))}
    return out


def run(opts: Options) -> dict:
    data = data_dir(opts, "search")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    configs = with_train_seeds(pool_configs(p["space"], p["cap"], p["grid_every"]),
                               p["train_seeds"])
    table = load_or_build(configs, data, opts.out.parent / "search-pool", p["workers"],
                          rebuild=opts.rebuild)
    runs = replay_all(table, p)
    summary = summarise(table, runs, p)
    summary["bounds"] = oracle_bounds(table, p, summary["random_final_best_median"])
    lives = [live_check(m, table, p, data, opts.runs / "search") for m in ("ours", "ray-asha")]
    bohb = live_bohb(table, p, data, opts.runs / "search", summary["random_final_best_median"])
    bohb["versus"] = bohb_versus(bohb, summary)
    png = opts.out / "search.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    _plot(summary, p, f"{len(table)} tabulated configurations x {len(table.train_seeds)} "
          f"training seeds ({data.name}, width 0.125, 32 px, "
          f"cap {p['cap']}), {p['seeds']} seeds, {p['workers']} workers"
          + (" (quick: a smoke run)" if opts.quick else ""), png, bohb)
    rows = [{"method": n, "label": m["label"], **{f"{k}_{q}": m[k][q] for k in
             ("final_best", "epochs_to_random_best") for q in ("median", "q25", "q75")},
             "reached": f"{m['reached_random_best']}/{p['seeds']}",
             "trials": m["trials"]["median"]} for n, m in summary["methods"].items()]
    print(fmt_table(rows, {"label": "method", "final_best_median": "best F1 (median)",
                           "final_best_q25": "q25", "final_best_q75": "q75",
                           "epochs_to_random_best_median": "epochs to random's best",
                           "epochs_to_random_best_q25": "q25", "epochs_to_random_best_q75": "q75",
                           "reached": "seeds reaching it", "trials": "trials (median)"}))
    t = summary["target"]
    first = t.get("default_first")
    print(f"search: random search's final best (median) {summary['random_final_best_median']:.4f}"
          f"; the pool's best {summary['pool_best_val_f1']:.4f}; target (ours <= 1/4 of the "
          f"budget): {'met' if t['met'] else 'NOT met'} ({t['fraction']:.3g})"
          + (f"; as gender tune runs it: {'met' if first['met'] else 'NOT met'} "
             f"({first['fraction']:.3g})" if first else "") + f"; plot {png}")
    for b in summary["bounds"].values():
        print(f"search: bound, {b['label']}: {b['epochs_to_random_best']['median']} trial-epochs "
              f"to random's best ({b['fraction_of_budget']:.3g} of the budget; reached in "
              f"{b['reached_random_best']} seeds)")
    for mine, key in VERSUS.items():
        for other, c in summary.get(key, {}).items():
            print(f"search: {mine} vs {other}: {verdicts(c)}")
    if "seeds" in bohb:
        print(f"search: Ray's BOHB live, {len(bohb['seeds'])} seeds: best F1 "
              f"{bohb['final_best']['median']:.4f}, trial-epochs to random's best "
              f"{bohb['epochs_to_random_best']['median']} (reached in "
              f"{bohb['reached_random_best']})")
        for other, c in bohb["versus"].items():
            print(f"search: bohb vs {other} (its even seeds): {verdicts(c)}")
    else:
        print(f"search: Ray's BOHB: {bohb['skipped']}")
    return {"params": {k: v for k, v in p.items() if k != "space"}, "space": p["space"],
            "pool": {"configs": [c.to_dict() for c in table.configs()], "size": len(table),
                     "train_seeds": table.train_seeds,
                     "identity": table.doc["identity"], "build": table.doc["build"],
                     # curves[k][i]: configuration i at the k-th training seed
                     "curves": [[[round(e["val_f1"], 4) for e in row["epochs"]]
                                 for row in table.tabulation(k).doc["configs"]]
                                for k in range(len(table.train_seeds))]},
            "data": str(data), **summary, "live": lives, "bohb": bohb, "plot": str(png)}
