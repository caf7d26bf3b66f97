"""Retrain the best trials on train+val, exactly as they trained, where they trained; test
the exported model once; write `best/`.

Members. The best trials are chosen from Ray Tune's own records of the search
(`outputs.outcome` on each trial's results): distinct configurations that share the best
trial's image size and crop. The best one (with `--ensemble K` the top K) is retrained
on train+val with `--seeds` training seeds (the trial's own first). Each retrained
member's `TrainConfig` is the one saved with its trial's checkpoint (but for the seed), so
every hyperparameter a `--space` searched comes along; it keeps its trial's learning-rate
schedule (a cosine over `--max-epochs`) and stops at the epoch where that trial's
validation F1 peaked.

Trial members. The search already trained the top configurations on the training split:
their best checkpoints join the average at no training cost (`--trial-members K`; by
default as many of the top three as score best together on validation; 0: none).

The recipe. Before retraining, the top trials' checkpoints are run on the validation
split: `gender.ensemble.compare_recipes` records single vs ensemble, with and without the
mirrored picture, with and without a temperature (`metrics.json` "validation_comparison"),
the number of trial members is chosen there, and the export's temperature is fitted there.

Where. The retrain is a Ray Tune experiment inside the experiment folder
(`retrain-<plan>/`, one trial per member): on the trials' resources (a GPU fraction or
CPUs, on whatever node has them), reading the data from the object store, checkpointing
every epoch. A killed worker restarts a member from its last epoch (Tune's failure
handling); a killed driver resumes on `gender retrain results/NAME` (or `gender tune
--resume`). The plan names the folder, so a different plan never overwrites one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ray import tune

from gender.config import TrainConfig
from gender.constants import BEST_DIR, MODEL_FILE, RETRAIN_DIR, SPLITS_FILE
from gender.data.layouts import read_dataset
from gender.data.splits import read_splits
from gender.engine import Trainer
from gender.ensemble import compare_recipes, recipe_temperature, view_probs
from gender.errors import UserError
from gender.export import load_model
from gender.io import check_writable_dir
from gender.pipeline import Prepared, finish_run
from tuning.cluster import node_shapes, start_ray
from tuning.experiment import (
    put_data,
    recover_named_checkpoints,
    search_results,
    trial_dirname,
    trial_resources,
)
from tuning.outputs import rank_trials, trials_table
from tuning.resources import TrialResources
from tuning.settings import TuneSettings
from tuning.trainable import RETRAIN, load_checkpoint, train_trial

__all__ = ["retrain_best", "retrain_plan", "retrain_resources", "with_seeds", "COMPARED",
           "choose_trial_members"]

COMPARED = 3  # ensembles of up to this many trials are compared on validation


def _best_checkpoint(result):
    """The trial's checkpoint of its best validation F1 (Ray keeps it by that score)."""
    if result.best_checkpoints:
        return max(result.best_checkpoints, key=lambda c: c[1].get("val_f1", -1.0))[0]
    return result.checkpoint


def retrain_plan(results, settings: TuneSettings, limit: int | None = None,
                 same_view: bool = True) -> list[dict]:
    """The best trials: [{"trial_id", "config", "until", "val_f1", "state"}], best first,
    at most `limit` (default: the export's members).

    Distinct configurations only, and (`same_view`) all at the best trial's image size and
    crop (one decoded picture feeds every member).
    """
    limit = limit or settings.ensemble
    table = trials_table(results, settings.max_epochs)
    ranked = rank_trials(table)
    if not len(ranked):
        raise UserError(f"{settings.exp_dir}: no trial finished without diverging or erroring")
    by_dir = {Path(r.path).name: r for r in results}
    members: list[dict] = []
    for _, row in ranked.iterrows():
        result = by_dir[f"trial_{row['trial_id']}"]
        ckpt = _best_checkpoint(result)
        if ckpt is None:
            continue
        with ckpt.as_directory() as d:
            state = load_checkpoint(d)
        cfg = TrainConfig.from_saved(state["config"])
        other_view = same_view and members and (
            cfg.input_view != TrainConfig.from_dict(members[0]["config"]).input_view)
        if other_view or any(m["config"] == cfg.to_dict() for m in members):
            continue
        members.append({"trial_id": str(row["trial_id"]), "config": cfg.to_dict(),
                        "until": int(row["best_epoch"]), "val_f1": float(row["best_val_f1"]),
                        "state": state})
        if len(members) == limit:
            break
    if not members:
        raise UserError(f"{settings.exp_dir}: the best trials left no checkpoint")
    return members


def with_seeds(configs: list[dict], seeds: int) -> list[dict]:
    """The members: each planned configuration with `seeds` training seeds, its trial's own
    seed first. A member is named by its trial, and beyond the first seed by its seed."""
    members = []
    for m in configs:
        for i in range(seeds):
            seed = (m["config"]["seed"] + i) % 2**32
            members.append({**m, "config": {**m["config"], "seed": seed},
                            "member": m["trial_id"] if i == 0 else f"{m['trial_id']}-seed{seed}"})
    return members


def _trainer(plan: dict, prep: Prepared, state: dict, split) -> Trainer:
    cfg = TrainConfig.from_dict(plan["config"])
    trainer = Trainer(cfg, prep.data, "cpu", train_split=split, eval_split=None)
    trainer.load_state_dict(state)
    return trainer


def choose_trial_members(comparison: list[dict], tta: bool, calibrate: bool) -> int:
    """How many of the top trials' checkpoints to average: the recipe (with the export's
    flip and temperature settings) of the highest validation accuracy, then the fewest
    members (a member that changes no answer only costs time)."""
    temperature = "out of fold" if calibrate else "off"
    rows = [r for r in comparison if r["tta_flip"] == tta and r["temperature"] == temperature]
    return min(rows, key=lambda r: (-r["accuracy"], r["members"]))["members"]


def _recipe(checkpoints: list[Trainer], k: int | None, prep: Prepared,
            settings: TuneSettings) -> dict:
    """Compare recipes (1..len(checkpoints) members, flip, temperature) on the validation
    split with the candidates' trial checkpoints; choose how many join the export (`k`;
    None: chosen here) and fit the export's temperature on their validation predictions
    (on the retrained members' own checkpoints when no trial member joins)."""
    val = prep.data.splits["val"]
    images, y = prep.data.images[val].numpy(), prep.data.labels[val].numpy()
    views = [view_probs(t.eval_model, images) for t in checkpoints]
    comparison = compare_recipes(views, y, len(views))
    if k is None:
        k = choose_trial_members(comparison, settings.tta, settings.calibrate)
    k = min(k, len(checkpoints))
    fit_k = k or min(settings.ensemble, len(checkpoints))
    temperature = (recipe_temperature(views, y, fit_k, settings.tta) if settings.calibrate
                   else 1.0)
    fitted_on = (f"the validation predictions of the top {fit_k} trial(s)' own checkpoints "
                 "(trained on the training split; the retrained members, trained on "
                 "train+val, cannot be scored there)")
    return {"comparison": comparison, "trial_members": k, "temperature": temperature,
            "temperature_fitted_on": fitted_on if settings.calibrate else None}


def retrain_resources(trial: TrialResources, members: int, node_cpus: list[float]) -> dict:
    """Each member gets its trial's resources: the same GPU share, or, for a CPU trial, its
    CPUs or more. With the search over, a CPU member takes an even share of the CPUs
    (at most one node's worth: a trial runs on one node), so the cores the other trials
    used do not sit idle through the retrain."""
    if trial.gpus or not node_cpus:
        return trial.as_dict()
    share = min(max(node_cpus), sum(node_cpus) // max(1, members))
    return {"cpu": max(trial.cpus, share), "gpu": 0.0}


def _plan_name(members: list[dict]) -> str:
    key = json.dumps([{k: m[k] for k in ("trial_id", "config", "until")} for m in members],
                     sort_keys=True)
    return f"{RETRAIN_DIR}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _run(settings: TuneSettings, members: list[dict], data: dict, verbose: int) -> list:
    """Fit (or resume) the retrain's Tune experiment -> one Result per member, in order."""
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig

    plans = [{k: m[k] for k in ("trial_id", "member", "config", "until")} for m in members]
    res = retrain_resources(trial_resources(settings), len(members),
                            [float(n.get("CPU", 0)) for n in node_shapes()])
    trainable = tune.with_resources(tune.with_parameters(train_trial, data=data), res)
    name = _plan_name(members)
    path = f"{settings.tune_path}/{name}"
    if tune.Tuner.can_restore(path):
        recover_named_checkpoints(path, quiet=verbose == 0)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space={RETRAIN: tune.grid_search(plans)},
            tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=trial_dirname,
                                        trial_dirname_creator=trial_dirname),
            run_config=RunConfig(name=name, storage_path=settings.tune_path, verbose=verbose,
                                 checkpoint_config=CheckpointConfig(num_to_keep=1),
                                 failure_config=FailureConfig(max_failures=3)))
    by_member = {}
    for result in tuner.fit():
        plan = result.config[RETRAIN]
        member = plan.get("member", plan["trial_id"])  # a retrain begun before seeds existed
        if result.error is not None:
            raise UserError(f"the retrain of member {member} failed: "
                            f"{str(result.error).splitlines()[0][:300]}")
        if (result.metrics or {}).get("diverged") == 1:
            raise UserError(f"the retrain of member {member} diverged "
                            f"({result.metrics.get('diverged_reason', 'NaN loss')})")
        by_member[member] = result
    return [by_member[m["member"]] for m in members]


def retrain_best(exp_dir: str | Path, quiet: bool = False, results=None) -> dict:
    """Retrain the best trial(s) into `best/` (model.pt, config.json, metrics.json, ...)."""
    exp = Path(exp_dir)
    settings = TuneSettings.load(exp)
    # Every file the retrain needs is read, and where best/ goes tried, before Ray starts.
    check_writable_dir(exp / BEST_DIR, "output folder")
    read_splits(exp / SPLITS_FILE, read_dataset(settings.data))
    results = results if results is not None else search_results(settings)
    start_ray(settings.address, quiet=quiet)
    # The top three (or more) are compared on validation whatever is exported, so every
    # run's metrics.json shows what an ensemble would have given.
    candidates = retrain_plan(results, settings, limit=max(settings.ensemble, COMPARED,
                                                           settings.trial_members or 0))
    configs = candidates[:settings.ensemble]
    members = with_seeds(configs, settings.seeds)
    size, crop = view = TrainConfig.from_dict(members[0]["config"]).input_view
    if not quiet:
        for m in configs:
            cfg = TrainConfig.from_dict(m["config"])
            print(f"retraining trial {m['trial_id']} ({cfg.model_name}, {size} px, crop "
                  f"{crop:g}) on train+val for {m['until']} of its {cfg.epochs} scheduled "
                  f"epochs (its validation F1 peaked at {m['val_f1']:.4f} there), with "
                  f"{settings.seeds} training seed(s) from {cfg.seed}", flush=True)
    data, prep = put_data(settings, [view], fresh_splits=False)
    # The candidates' trial checkpoints: scored on validation, and the trial members.
    checkpoints = [_trainer(m, prep, m["state"], "train") for m in candidates]
    recipe = _recipe(checkpoints, settings.trial_members, prep, settings)
    if not quiet and recipe["trial_members"]:
        print(f"averaged with the checkpoints of the top {recipe['trial_members']} trial(s) "
              "(trained on the training split; "
              + ("chosen on validation)" if settings.trial_members is None else "--trial-members)"),
              flush=True)
    results = _run(settings, members, data, verbose=0 if quiet else 1)
    trainers = []
    for m, r in zip(members, results, strict=True):
        with r.checkpoint.as_directory() as d:
            trainers.append(_trainer(m, prep, load_checkpoint(d), ("train", "val")))
    trial_members = candidates[:recipe["trial_members"]]
    trainers += checkpoints[:recipe["trial_members"]]
    best = results[0].metrics or {}
    described = (
        [{"member": m["member"], "trial_id": m["trial_id"], "seed": m["config"]["seed"],
          "trained_on": "train+val", "val_f1_in_tuning": m["val_f1"],
          "retrain_epochs": m["until"], "config": m["config"]} for m in members]
        + [{"member": f"{m['trial_id']}-trial", "trial_id": m["trial_id"],
            "seed": m["config"]["seed"], "trained_on": "train (the trial's checkpoint)",
            "val_f1_in_tuning": m["val_f1"], "epochs": int(m["state"]["epoch"]),
            "config": m["config"]}
           for m in trial_members])
    export = {"members": described, "seeds": settings.seeds,
              "trial_members": recipe["trial_members"],
              "trial_members_chosen": ("on validation" if settings.trial_members is None
                                       else "--trial-members"),
              "tta_flip": settings.tta, "temperature": recipe["temperature"],
              "temperature_fitted_on": recipe["temperature_fitted_on"]}
    metrics = finish_run(
        trainers, prep, exp / BEST_DIR,
        sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in results),
        tta_flip=settings.tta, temperature=recipe["temperature"], config=export, extra={
            "trial_id": members[0]["trial_id"], "val_f1_in_tuning": members[0]["val_f1"],
            "member_trials": [m["member"] for m in described],
            "trained_on": "train+val", "n_train": int(len(trainers[0].train_idx)),
            "retrain_epochs": members[0]["until"],
            "schedule_epochs": members[0]["config"]["epochs"],
            "split_seed": settings.split_seed, "retrain_node": best.get("node_id"),
            "retrain_device": best.get("device"),
            "validation_comparison": recipe["comparison"]})
    load_model(exp / BEST_DIR / MODEL_FILE)  # the file just written must load the safe way
    return metrics
