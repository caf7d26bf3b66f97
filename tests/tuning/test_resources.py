"""Trial resources: defaults from the cluster, validation, and fractional GPUs on a Ray
that only pretends to have one (training must fall back to the CPU)."""

import pandas as pd
import pytest
import ray
from ray import tune

from gender.errors import ConfigError
from tuning.experiment import run_experiment
from tuning.resources import TrialResources, default_resources
from tuning.settings import TuneSettings
from tuning.space import QUICK_SPACE, load_space


@pytest.mark.parametrize("cluster,cpus,gpus", [
    ({"CPU": 2}, 1, 0),
    ({"CPU": 32}, 2, 0),
    ({"CPU": 16, "GPU": 2}, 8, 1),
    ({"CPU": 4, "GPU": 4}, 1, 1),
])
def test_default_resources_follow_the_cluster(cluster, cpus, gpus):
    r = default_resources(cluster)
    assert (r.cpus, r.gpus) == (cpus, gpus)


def test_fractional_gpus_pack_several_trials_per_gpu():
    r = TrialResources(cpus=1, gpus=0.25)
    assert r.slots({"CPU": 8, "GPU": 1}) == 4
    assert r.slots({"CPU": 2, "GPU": 1}) == 2  # CPUs bind first


@pytest.mark.parametrize("cpus,gpus,rule", [(0, 0, "--cpus-per-trial"),
                                            (1, 0.3, "fraction must divide 1"),
                                            (1, 1.5, "must be whole")])
def test_bad_trial_resources_are_refused(cpus, gpus, rule):
    with pytest.raises(ConfigError, match=rule):
        TrialResources(cpus=cpus, gpus=gpus)


class MaxRunning(tune.Callback):
    """Counts trials running at once, from Tune's own trial events."""

    def __init__(self):
        self.running, self.peak = set(), 0

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self.peak = max(self.peak, len(self.running))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)

    on_trial_error = on_trial_complete


def test_quarter_gpu_trials_run_four_at_once_and_train_on_the_cpu(synth_data, tmp_path):
    ray.init(num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        space = load_space(None, base={**QUICK_SPACE, "width": {"choices": [0.125]},
                                       "arch": {"choices": ["vgg11"]}})
        settings = TuneSettings(data=str(synth_data), name="gpu", results=str(tmp_path),
                                num_samples=4, max_epochs=2, grace_period=2, space=space,
                                cpus_per_trial=1, gpus_per_trial=0.25, retrain=False)
        counter = MaxRunning()
        run_experiment(settings, verbose=0, callbacks=[counter])
    finally:
        ray.shutdown()
    assert counter.peak == 4
    trial_dirs = sorted(settings.exp_dir.glob("trial_*"))
    assert len(trial_dirs) == 4
    for d in trial_dirs:
        assert set(pd.read_csv(d / "progress.csv")["device"]) == {"cpu"}
