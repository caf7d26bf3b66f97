"""Replay a search against a table of learning curves, in simulated time.

A fixed number of workers run trials epoch by epoch; an epoch takes its tabulated seconds
times a seeded jitter, so concurrent trials finish in a different order from seed to seed,
as they do live. Every decision is taken by a method's real objects: Ray's `OptunaSearch`
(through the project's `ConcurrencyLimiter`), `ASHAScheduler`, our `FlooredASHA`, or an
Optuna study with its pruner. They are called in the order Ray's TuneController calls
them: for each result the scheduler decides, then (unless it stopped the trial) the
searcher sees the result; when a trial ends, both get `on_trial_complete` with its last
result, and the freed worker asks the searcher for the next trial at once.

The run ends when the budget of trial-epochs is spent (epochs still running then are not
counted), when `max_trials` have ended, or when the searcher has nothing more to propose.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from benchmarks.search_pool import Table
from gender.config import TrainConfig
from tuning.space import define_by_run, trial_config

__all__ = ["simulate", "Run", "SimTrial", "RayMethod", "OptunaMethod", "GridMethod",
           "OracleStopping"]


@dataclass
class SimTrial:
    """What Ray's schedulers read of a trial (`trial_id`), plus the replay's own state."""

    trial_id: str
    config: TrainConfig
    curve: list[dict]
    diverged: bool
    epoch: int = 0
    best: float = 0.0
    stopped: bool = False  # by the scheduler or pruner, before its curve ended


@dataclass
class Run:
    """One replay: the best validation F1 so far after each trial-epoch (in the order the
    epochs finished) and when each finished, and every trial's configuration and fate."""

    best: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    trials: list[dict] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.best)

    def epochs_to_reach(self, target: float) -> float:
        """Trial-epochs until the best so far first reached `target`; inf if never."""
        for i, b in enumerate(self.best, 1):
            if b >= target - 1e-12:
                return float(i)
        return math.inf


def _result(trial: SimTrial) -> dict:
    """The epoch's result as `tuning.trainable.train_trial` reports it."""
    row = trial.curve[trial.epoch - 1]
    if trial.diverged and trial.epoch == len(trial.curve):
        # train_trial reports a diverged loss as F1 0 (best too) and ends the trial.
        return {"training_iteration": trial.epoch, "val_f1": 0.0, "best_val_f1": 0.0,
                "diverged": 1}
    trial.best = max(trial.best, row["val_f1"])
    return {"training_iteration": trial.epoch, **row, "best_val_f1": trial.best,
            "diverged": 0}


class RayMethod:
    """A Ray Tune searcher and scheduler, driven as the TuneController drives them."""

    def __init__(self, search_alg, scheduler):
        self.search_alg, self.scheduler = search_alg, scheduler

    def suggest(self, trial_id: str) -> dict | None:
        from ray.tune.search import Searcher

        params = self.search_alg.suggest(trial_id)
        return None if params is None or params == Searcher.FINISHED else params

    def add(self, trial: SimTrial) -> None:
        self.scheduler.on_trial_add(None, trial)

    def result(self, trial: SimTrial, result: dict) -> bool:
        """True: stop the trial."""
        from ray.tune.schedulers import TrialScheduler

        decision = self.scheduler.on_trial_result(None, trial, result)
        if decision == TrialScheduler.STOP:
            return True
        self.search_alg.on_trial_result(trial.trial_id, result)
        return False

    def complete(self, trial: SimTrial, result: dict) -> None:
        self.scheduler.on_trial_complete(None, trial, result)
        self.search_alg.on_trial_complete(trial.trial_id, result=result)


class OptunaMethod:
    """Optuna alone, as its documentation runs a pruned study: ask a trial, report the
    validation F1 every epoch, stop it when `should_prune()`, tell the last F1 (or
    PRUNED). Concurrent workers ask and tell the one study, as `optimize(n_jobs=...)`."""

    def __init__(self, study, space: dict, constants: dict):
        self.study, self.space, self.constants = study, space, constants
        self._trials: dict[str, object] = {}
        self._pruned: set[str] = set()

    def suggest(self, trial_id: str) -> dict | None:
        ot = self.study.ask()
        define_by_run(self.space, self.constants)(ot)
        self._trials[trial_id] = ot
        return {**ot.params, **self.constants}

    def add(self, trial: SimTrial) -> None:
        pass

    def result(self, trial: SimTrial, result: dict) -> bool:
        ot = self._trials[trial.trial_id]
        ot.report(result["val_f1"], step=result["training_iteration"])
        if ot.should_prune():
            self._pruned.add(trial.trial_id)
            return True
        return False

    def complete(self, trial: SimTrial, result: dict) -> None:
        from optuna.trial import TrialState

        ot = self._trials.pop(trial.trial_id)
        if trial.trial_id in self._pruned:
            self.study.tell(ot, state=TrialState.PRUNED)
        else:
            self.study.tell(ot, result["val_f1"])


class GridMethod:
    """A fixed list of configurations, each to the cap (the notebook's grid)."""

    def __init__(self, configs: list[TrainConfig]):
        self._todo = [c.to_dict() for c in configs]

    def suggest(self, trial_id: str) -> dict | None:
        return self._todo.pop(0) if self._todo else None

    def add(self, trial: SimTrial) -> None:
        pass

    def result(self, trial: SimTrial, result: dict) -> bool:
        return False

    def complete(self, trial: SimTrial, result: dict) -> None:
        pass


class OracleStopping:
    """A bound, not a method: another method's proposals, with a stopper that reads the
    table. A trial whose curve never reaches `bar` stops after its first epoch (the least a
    started trial costs), one whose curve does stops when it gets there. No stopping rule
    reaches `bar` on the same proposals with fewer trial-epochs (exactly so on one worker;
    on several, up to the order in which concurrent epochs finish)."""

    def __init__(self, proposals, bar: float):
        self.proposals, self.bar = proposals, bar

    def suggest(self, trial_id: str) -> dict | None:
        return self.proposals.suggest(trial_id)

    def add(self, trial: SimTrial) -> None:
        self.proposals.add(trial)

    def result(self, trial: SimTrial, result: dict) -> bool:
        if result["val_f1"] >= self.bar - 1e-12:
            return True
        return max(e["val_f1"] for e in trial.curve) < self.bar - 1e-12

    def complete(self, trial: SimTrial, result: dict) -> None:
        # The searcher learns the trial's last result, as from any early-stopped trial.
        self.proposals.complete(trial, result)


def simulate(method, table: Table, *, budget: int, workers: int, seed: int,
             jitter: float = 0.1, max_trials: int | None = None) -> Run:
    """Run `method` on `workers` simulated workers until `budget` trial-epochs are spent.

    `jitter`: the standard deviation of a log-normal factor on every epoch's duration
    (0: the tabulated durations exactly, e.g. to follow a live run's order)."""
    rng = np.random.default_rng(seed)
    run, heap, trials = Run(), [], []
    seq = 0

    def schedule(trial: SimTrial, now: float) -> None:
        nonlocal seq
        secs = trial.curve[trial.epoch]["epoch_seconds"]
        secs *= math.exp(rng.normal(0.0, jitter)) if jitter else 1.0
        seq += 1
        heapq.heappush(heap, (now + secs, seq, trial))

    def launch(now: float) -> None:
        if run.epochs >= budget or (max_trials is not None and len(trials) >= max_trials):
            return
        tid = f"{len(trials):05d}"
        params = method.suggest(tid)
        if params is None:
            return  # nothing more to propose: the worker stays idle
        cfg = trial_config(params)
        trial = SimTrial(tid, cfg, table.curve(cfg), table.diverged(cfg))
        trials.append(trial)
        method.add(trial)
        schedule(trial, now)

    for _ in range(workers):
        launch(0.0)
    best = 0.0
    while heap and run.epochs < budget:
        now, _, trial = heapq.heappop(heap)
        trial.epoch += 1
        result = _result(trial)
        best = max(best, result["val_f1"])
        run.best.append(best)
        run.seconds.append(now)
        stop = method.result(trial, result)
        if stop or trial.epoch >= len(trial.curve):
            trial.stopped = stop and trial.epoch < table.cap
            method.complete(trial, result)
            launch(now)
        else:
            schedule(trial, now)
    run.trials = [{"config": table.index(t.config), "epochs": t.epoch, "best_val_f1": t.best,
                   "stopped": t.stopped} for t in trials]
    return run
