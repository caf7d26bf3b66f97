"""Retrain the best trial on train+val, exactly as it trained, where it trained; test it
once; export it to `best/`.

The best trial is chosen from Ray Tune's own records of the search (`outputs.outcome` on
each trial's results), and its `TrainConfig` is the one saved with its checkpoint, so
every hyperparameter a `--space` searched comes along. The retrain keeps the trial's
learning-rate schedule (a cosine over `--max-epochs`) and stops at the epoch where the
trial's validation F1 peaked.

It runs as a one-trial Ray Tune experiment inside the experiment folder
(`retrain-<plan>/`): on the trial's resources (its GPU fraction or CPUs, on whatever
node has them), reading the data from the object store, checkpointing every epoch. A
killed worker restarts from its last epoch (Tune's failure handling); a killed driver
resumes from it on `gender retrain results/NAME` (or `gender tune --resume`). The plan
(trial, config, epochs) names the folder, so a different plan never overwrites one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ray import tune

from gender.config import TrainConfig
from gender.constants import BEST_DIR, MODEL_FILE, RETRAIN_DIR
from gender.engine import Trainer
from gender.errors import UserError
from gender.export import load_model
from gender.pipeline import finish_run
from tuning.cluster import start_ray
from tuning.experiment import put_data, search_results, trial_dirname, trial_resources
from tuning.outputs import pick_best, trials_table
from tuning.settings import TuneSettings
from tuning.trainable import RETRAIN, checkpoint_config, load_checkpoint, train_trial

__all__ = ["retrain_best", "retrain_plan"]


def retrain_plan(results, settings: TuneSettings) -> dict:
    """{"trial_id", "config", "until", "val_f1"}: the best trial, its own TrainConfig (from
    its checkpoint) and the epoch it peaked at."""
    table = trials_table(results, settings.max_epochs)
    best = pick_best(table) if len(table) else None
    if best is None:
        raise UserError(f"{settings.exp_dir}: no trial finished without diverging or erroring")
    trial_id = str(best["trial_id"])
    result = next(r for r in results if Path(r.path).name == f"trial_{trial_id}")
    if result.checkpoint is None:
        raise UserError(f"{settings.exp_dir}: trial {trial_id} left no checkpoint to read "
                        "its configuration from")
    with result.checkpoint.as_directory() as d:
        cfg = checkpoint_config(d)
    return {"trial_id": trial_id, "config": cfg.to_dict(), "until": int(best["best_epoch"]),
            "val_f1": float(best["best_val_f1"])}


def _plan_name(plan: dict) -> str:
    key = json.dumps({k: plan[k] for k in ("trial_id", "config", "until")}, sort_keys=True)
    return f"{RETRAIN_DIR}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _run(settings: TuneSettings, plan: dict, data: dict, verbose: int):
    """Fit (or resume) the retrain's one-trial Tune experiment -> its Result."""
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig

    res = trial_resources(settings)
    trainable = tune.with_resources(tune.with_parameters(train_trial, data=data),
                                    res.as_dict())
    name = _plan_name(plan)
    path = f"{settings.tune_path}/{name}"
    if tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space={RETRAIN: plan},
            tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=trial_dirname,
                                        trial_dirname_creator=trial_dirname),
            run_config=RunConfig(name=name, storage_path=settings.tune_path, verbose=verbose,
                                 checkpoint_config=CheckpointConfig(num_to_keep=1),
                                 failure_config=FailureConfig(max_failures=3)))
    result = tuner.fit()[0]
    if result.error is not None:
        raise UserError(f"the retrain of trial {plan['trial_id']} failed: "
                        f"{str(result.error).splitlines()[0][:300]}")
    if (result.metrics or {}).get("diverged") == 1:
        raise UserError(f"the retrain of trial {plan['trial_id']} diverged "
                        f"({result.metrics.get('diverged_reason', 'NaN loss')})")
    return result


def retrain_best(exp_dir: str | Path, quiet: bool = False, results=None) -> dict:
    """Retrain the best trial into `best/` (model.pt, config.json, metrics.json, ...)."""
    exp = Path(exp_dir)
    settings = TuneSettings.load(exp)
    start_ray(settings.address, quiet=quiet)
    plan = retrain_plan(results if results is not None else search_results(settings),
                        settings)
    cfg = TrainConfig.from_dict(plan["config"])
    if not quiet:
        print(f"retraining trial {plan['trial_id']} on train+val for {plan['until']} of its "
              f"{cfg.epochs} scheduled epochs (its validation F1 peaked at "
              f"{plan['val_f1']:.4f} there)", flush=True)
    data, prep = put_data(settings, [cfg.image_size], fresh_splits=False)
    result = _run(settings, plan, data, verbose=0 if quiet else 1)
    trainer = Trainer(cfg, prep.data, "cpu", train_split=("train", "val"), eval_split=None)
    with result.checkpoint.as_directory() as d:
        trainer.load_state_dict(load_checkpoint(d))
    m = result.metrics or {}
    metrics = finish_run(trainer, prep, exp / BEST_DIR, float(m.get("time_total_s", 0.0)), extra={
        "trial_id": plan["trial_id"], "val_f1_in_tuning": plan["val_f1"],
        "trained_on": "train+val", "n_train": int(len(trainer.train_idx)),
        "retrain_epochs": plan["until"], "schedule_epochs": cfg.epochs,
        "split_seed": settings.split_seed, "retrain_node": m.get("node_id"),
        "retrain_device": m.get("device")})
    load_model(exp / BEST_DIR / MODEL_FILE)  # the file just written must load the safe way
    return metrics
