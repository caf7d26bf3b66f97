"""Run an experiment: data into the object store once, Optuna TPE proposing, ASHA
stopping, then trials.csv, the retrained best model and the summary."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import ray
from ray import tune

from gender.config import UNSAVED_DEFAULTS
from gender.constants import JOURNAL_FILE, SPLITS_FILE, TRIALS_FILE
from gender.data.splits import write_splits
from gender.data.tensors import load_arrays
from gender.errors import UserError
from gender.pipeline import Prepared, prepare
from tuning.cluster import reach_ray
from tuning.outputs import trials_table, write_trials
from tuning.resources import TrialResources, default_resources
from tuning.settings import DEFAULT_NUM_SAMPLES, TuneSettings
from tuning.space import NOTEBOOK_GRID, define_by_run, widen_for
from tuning.trainable import train_trial

__all__ = ["put_data", "build_search", "build_tuner", "run_experiment", "resume_experiment",
           "finish_experiment", "search_results", "trial_resources", "input_views",
           "trial_dirname", "recover_named_checkpoints"]


def put_data(settings: TuneSettings, views: list[tuple[int, float]], fresh_splits: bool
             ) -> tuple[dict, Prepared]:
    """Decode once on the driver (cached on disk), then one object-store copy per view
    (image size, crop) that every trial on every node reads zero-copy. Writes/reads
    `splits.csv`.

    -> (the refs trials get, the driver's own `Prepared` at the first view)."""
    splits_csv = settings.exp_dir / SPLITS_FILE
    (size, crop), rest = views[0], views[1:]
    prep = prepare(settings.data, size, split_seed=settings.split_seed,
                   splits_csv=None if fresh_splits else splits_csv, crop=crop)
    if fresh_splits:
        write_splits(prep.splits, splits_csv)
    images = {(size, crop): ray.put(prep.data.images.numpy())}
    for size, crop in rest:
        images[(size, crop)] = ray.put(load_arrays(prep.index, size, crop=crop))
    refs = {"images": images, "labels": prep.data.labels.numpy(),
            "splits": prep.data.splits, "fingerprint": prep.index.fingerprint()}
    return refs, prep


def input_views(settings: TuneSettings) -> list[tuple[int, float]]:
    """Every (image size, crop) a trial of the space can ask for: each is decoded once."""
    # Without a crop entry a trial's parameters have none (`TrainConfig.from_saved`).
    crops = settings.space.get("crop", {"choices": [UNSAVED_DEFAULTS["crop"]]})["choices"]
    return sorted({(int(s), float(c)) for s in settings.space["image_size"]["choices"]
                   for c in crops})


def search_results(settings: TuneSettings):
    """The search's ResultGrid, read from what Ray Tune saved (no trial is run)."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    if not tune.Tuner.can_restore(settings.tune_path):
        raise UserError(f"{settings.exp_dir}: no Ray Tune results at {settings.tune_path}")
    try:
        return ResultGrid(ExperimentAnalysis(settings.tune_path))
    except Exception as e:  # Ray's readers raise many kinds for a damaged state
        raise UserError(f"{settings.tune_path}: damaged Ray Tune results "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})"
                        ) from None


def _storage(settings: TuneSettings):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return JournalStorage(JournalFileBackend(str(settings.exp_dir / JOURNAL_FILE)))


def trial_resources(settings: TuneSettings) -> TrialResources:
    """What every trial gets (and the retrain, which runs as its trial did)."""
    return default_resources(ray.cluster_resources(), settings.cpus_per_trial,
                             settings.gpus_per_trial)


def _trainable(settings: TuneSettings, data: dict):
    res = trial_resources(settings)
    return tune.with_resources(tune.with_parameters(train_trial, data=data), res.as_dict()), res


def _run_config(settings: TuneSettings, verbose: int, callbacks: list | None = None):
    from ray.tune import CheckpointConfig, FailureConfig, RunConfig

    return RunConfig(
        name=settings.name, storage_path=settings.storage_path, verbose=verbose,
        callbacks=callbacks,
        # Keep the best checkpoint by validation F1; Ray also keeps the latest to resume.
        checkpoint_config=CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_f1",
                                           checkpoint_score_order="max"),
        # A trial whose worker or node dies restarts (from its checkpoint) elsewhere.
        failure_config=FailureConfig(max_failures=3),
    )


def _first_points(settings: TuneSettings) -> list[dict]:
    grid = [dict(p) for p in NOTEBOOK_GRID] if settings.seed_grid else []
    return grid + [dict(p) for p in settings.enqueue]


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"  # short: the config is in params.json and trials.csv


def build_search(settings: TuneSettings, slots: int, storage=None):
    """The searcher (Optuna through Ray's `OptunaSearch`, at most `slots` trials at once)
    and the scheduler of an experiment; `storage`: the Optuna study's (in memory if None).
    `build_tuner` wires them to the trials; benchmarks/search.py replays them."""
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from tuning.scheduler import FlooredASHA

    multi = settings.objective == "f1,latency"
    first = _first_points(settings)
    import optuna

    # TPE after a few random trials (Optuna's default of 10 would make small runs random);
    # multivariate + group model the conditional space jointly, and the constant liar keeps
    # concurrent trials from all being proposed at the same point.
    with warnings.catch_warnings():  # multivariate/group are "experimental" since 2020
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # Open-ended (a time budget alone): plan the random start-up as for a default run.
        expected = settings.num_samples or DEFAULT_NUM_SAMPLES
        sampler = optuna.samplers.TPESampler(
            seed=settings.seed, n_startup_trials=min(10, max(3, expected // 4)),
            multivariate=True, group=True, constant_liar=True)
    if settings.sampler == "random":  # a baseline for benchmarks, not a tuning mode
        sampler = optuna.samplers.RandomSampler(seed=settings.seed)
    searcher = OptunaSearch(
        space=define_by_run(widen_for(settings.space, first),
                            {"epochs": settings.max_epochs, "seed": settings.seed}),
        metric=["best_val_f1", "latency_ms_p50"] if multi else "best_val_f1",
        mode=["max", "min"] if multi else "max",
        points_to_evaluate=first or None,
        sampler=sampler, storage=storage, study_name=settings.name)
    scheduler = FlooredASHA(metric="val_f1", mode="max", time_attr="training_iteration",
                            max_t=settings.max_epochs, grace_period=settings.grace_period,
                            reduction_factor=settings.reduction_factor)
    if settings.scheduler == "fifo":  # no early stopping: every trial runs to max_epochs
        scheduler = FIFOScheduler()
    return ConcurrencyLimiter(searcher, max_concurrent=slots), scheduler


def build_tuner(settings: TuneSettings, data: dict, verbose: int = 1,
                callbacks: list | None = None) -> tune.Tuner:
    trainable, res = _trainable(settings, data)
    # Concurrency: what fits the cluster now, unless the user asks for more (an autoscaling
    # cluster grows to meet pending trials; TPE learns less from many concurrent proposals).
    slots = settings.max_concurrent or res.slots(ray.cluster_resources())
    search_alg, scheduler = build_search(settings, slots, _storage(settings))
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=scheduler,
            num_samples=settings.ray_num_samples, time_budget_s=settings.time_budget,
            # Every trial asks for the same resources, so a finished or stopped trial's
            # worker process takes the next one: no new process importing torch each time.
            reuse_actors=True,
            trial_name_creator=trial_dirname, trial_dirname_creator=trial_dirname),
        run_config=_run_config(settings, verbose, callbacks),
    )


def finish_experiment(settings: TuneSettings, results, quiet: bool = False) -> dict:
    """trials.csv, then the retrain of the best into best/, then the summary."""
    exp = settings.exp_dir
    table = trials_table(results, settings.max_epochs)
    write_trials(table, exp / TRIALS_FILE)
    summary = {"trials": len(table), "statuses": table["status"].value_counts().to_dict()}
    if settings.retrain:
        from tuning.retrain import retrain_best

        summary["best"] = retrain_best(exp, quiet=quiet, results=results)
    from tuning.report import write_report

    summary["report"] = str(write_report(exp))
    return summary


def run_experiment(settings: TuneSettings, verbose: int = 1,
                   callbacks: list | None = None) -> dict:
    settings.check_new()
    # Reach Ray and check that a trial fits before anything is written.
    reach_ray(settings.address, settings.cpus_per_trial, settings.gpus_per_trial,
              quiet=verbose == 0)
    settings.save()
    data, _ = put_data(settings, input_views(settings), fresh_splits=True)
    results = build_tuner(settings, data, verbose, callbacks).fit()
    return finish_experiment(settings, results, quiet=verbose == 0)


def recover_named_checkpoints(tune_path: str, quiet: bool = True) -> list[str]:
    """Ray deletes a trial's older checkpoint when a better one arrives (`num_to_keep`), but
    saves the experiment state only every few seconds: a driver killed in between leaves a
    state that names a checkpoint no longer on disk, and Ray then fails that trial on every
    restore. Put the trial's newest checkpoint where the state looks, so the trial resumes
    from the last epoch it saved (what Ray did itself before its storage rewrite). Local
    storage only. -> the trials recovered."""
    from ray.tune import ExperimentAnalysis

    if "://" in tune_path:
        return []
    recovered = []
    for trial in ExperimentAnalysis(tune_path).trials:
        named = Path(trial.checkpoint.path) if trial.checkpoint is not None else None
        if named is None or named.exists():
            continue
        saved = sorted(named.parent.glob("checkpoint_*"))
        if saved:
            shutil.move(saved[-1], named)
            recovered.append(trial.trial_id)
            if not quiet:
                print(f"trial {trial.trial_id}: resuming from its newest checkpoint on disk "
                      "(the saved state named one Ray had already replaced)", flush=True)
    return recovered


def resume_experiment(exp_dir: str | Path, verbose: int = 1) -> dict:
    """Restore after a lost driver: finished trials kept, unfinished and errored resumed
    from their checkpoints, the Optuna study continued from its journal."""
    settings = TuneSettings.load(exp_dir)
    path = settings.tune_path
    if not tune.Tuner.can_restore(path):
        raise UserError(f"--resume {exp_dir}: no restorable Ray Tune state there")
    reach_ray(settings.address, settings.cpus_per_trial, settings.gpus_per_trial,
              quiet=verbose == 0)
    recover_named_checkpoints(path, quiet=verbose == 0)
    data, _ = put_data(settings, input_views(settings), fresh_splits=False)
    trainable, _ = _trainable(settings, data)
    tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                               resume_errored=True)
    return finish_experiment(settings, tuner.fit(), quiet=verbose == 0)
