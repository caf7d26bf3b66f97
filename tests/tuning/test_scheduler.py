"""FlooredASHA: Ray's ASHA, plus a stop for trials below chance from the grace period on."""

from types import SimpleNamespace

import pytest
from ray.tune.schedulers import TrialScheduler

from tuning.scheduler import FlooredASHA, rung_epochs


def _scheduler():
    return FlooredASHA(metric="val_f1", mode="max", time_attr="training_iteration",
                       max_t=8, grace_period=2, reduction_factor=2)


def _add(s, name):
    trial = SimpleNamespace(trial_id=name)
    s.on_trial_add(None, trial)
    return trial


def _report(s, trial, epoch, f1):
    return s.on_trial_result(None, trial, {"training_iteration": epoch, "val_f1": f1})


def test_a_trial_below_chance_at_the_grace_period_is_stopped():
    s = _scheduler()
    t = _add(s, "a")
    assert _report(s, t, 1, 0.33) == TrialScheduler.CONTINUE  # before the grace period
    assert _report(s, t, 2, 0.33) == TrialScheduler.STOP


def test_plain_asha_would_have_promoted_that_first_trial():
    from ray.tune.schedulers import ASHAScheduler

    s = ASHAScheduler(metric="val_f1", mode="max", time_attr="training_iteration",
                      max_t=8, grace_period=2, reduction_factor=2)
    t = SimpleNamespace(trial_id="a")
    s.on_trial_add(None, t)
    assert s.on_trial_result(None, t, {"training_iteration": 2, "val_f1": 0.33}) == \
        TrialScheduler.CONTINUE


def test_a_floored_trial_does_not_lower_the_rung_cutoff():
    s = _scheduler()
    hopeless, good, weaker = _add(s, "h"), _add(s, "g"), _add(s, "w")
    assert _report(s, hopeless, 2, 0.33) == TrialScheduler.STOP
    s.on_trial_complete(None, hopeless, {"training_iteration": 2, "val_f1": 0.33})
    assert _report(s, good, 2, 0.90) == TrialScheduler.CONTINUE
    # Had 0.33 been recorded, the median of {0.33, 0.90} would let 0.70 through.
    assert _report(s, weaker, 2, 0.70) == TrialScheduler.STOP


def test_trials_above_chance_follow_ordinary_asha():
    s = _scheduler()
    first, second = _add(s, "1"), _add(s, "2")
    assert _report(s, first, 2, 0.60) == TrialScheduler.CONTINUE
    assert _report(s, second, 2, 0.55) == TrialScheduler.STOP  # below the rung's cut-off
    assert _report(s, first, 8, 0.70) == TrialScheduler.STOP  # the epoch cap


def test_rungs_rank_a_trial_by_its_f1_at_the_rung_epoch():
    s = _scheduler()
    steady = _add(s, "s")
    assert _report(s, steady, 2, 0.80) == TrialScheduler.CONTINUE
    assert _report(s, steady, 4, 0.85) == TrialScheduler.CONTINUE  # the rung's only score
    dipping = _add(s, "d")
    for epoch, f1 in [(1, 0.70), (2, 0.82), (3, 0.88)]:
        assert _report(s, dipping, epoch, f1) == TrialScheduler.CONTINUE
    assert _report(s, dipping, 4, 0.84) == TrialScheduler.STOP  # below 0.85 at the rung


@pytest.mark.parametrize("grace, factor, cap", [(2, 3, 20), (2, 2, 8), (1, 2, 3), (1, 4, 10),
                                                (3, 3, 100)])
def test_rung_epochs_are_the_milestones_rays_asha_builds(grace, factor, cap):
    s = FlooredASHA(metric="val_f1", mode="max", time_attr="training_iteration", max_t=cap,
                    grace_period=grace, reduction_factor=factor)
    assert rung_epochs(grace, factor, cap) == sorted(r for r, _ in s._brackets[0]._rungs)
