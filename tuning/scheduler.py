"""ASHA with a chance floor.

Asynchronous successive halving compares a trial only with the trials that reached the
same rung before it. The first few trials of an experiment meet no competition (the very
first is always promoted) and, in a wide search space, they are often hopeless: a learning
rate that leaves the network predicting one class, say. They train to the epoch cap and
their low scores drag the rung's cut-off down for the trials after them. `FlooredASHA`
stops, from the grace period on, any trial whose validation F1 is below a fixed floor
(0.5: a coin flip's macro F1; predicting one class scores ~0.33), without recording it in
the rungs. The floor reads the latest epoch: a network that predicts one class now is
broken now. Everything else is Ray's ASHA unchanged (ranking trials at a rung by their
best F1 so far instead of the rung epoch's was tried and dropped: the search benchmark
found it changed no decision across seeds).
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

__all__ = ["FlooredASHA", "CHANCE_F1", "rung_epochs"]

CHANCE_F1 = 0.5


def rung_epochs(grace_period: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs at which ASHA compares trials: grace * factor**k up to the cap (Ray's
    `_Bracket` milestones for a single bracket, the only one ASHA builds by default)."""
    rungs, r = [], grace_period
    while r <= max_epochs:
        rungs.append(r)
        r *= reduction_factor
    return rungs


class FlooredASHA(ASHAScheduler):
    def __init__(self, *, floor: float = CHANCE_F1, **kwargs):
        super().__init__(**kwargs)
        self._floor = floor
        self._grace = kwargs.get("grace_period", 1)
        self._floored: set[str] = set()

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        value, step = result.get(self._metric), result.get(self._time_attr)
        if (value is not None and step is not None and step >= self._grace
                and self._metric_op * value < self._metric_op * self._floor):
            self._floored.add(trial.trial_id)
            self._num_stopped += 1
            return TrialScheduler.STOP
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial.trial_id in self._floored:  # keep its score out of the rungs' cut-offs
            self._floored.discard(trial.trial_id)
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)
