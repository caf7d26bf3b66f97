"""Trial resources: defaults from the cluster, validation, the check against what the
cluster's nodes (and those its autoscaler may add) can hold, and fractional GPUs on a Ray
that only pretends to have one (training must fall back to the CPU)."""

from pathlib import Path

import pandas as pd
import pytest
import ray
import torch
from ray import tune

from gender.errors import ConfigError
from tuning.experiment import run_experiment
from tuning.resources import TrialResources, check_fits, default_resources
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


def test_quarter_gpu_trials_run_four_at_once_on_the_gpu_or_without_cuda_on_the_cpu(synth_data,
                                                                                   tmp_path):
    # Where torch sees no GPU (CI), Ray's one GPU is a fake resource and trials fall back
    # to the CPU; on a GPU machine the four share the real one.
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
        assert set(pd.read_csv(d / "progress.csv")["device"]) == {
            "cuda:0" if torch.cuda.is_available() else "cpu"}


# ---------------------------------------------------------------- what the cluster can hold

CPU_BOX = [{"CPU": 2.0}]


@pytest.mark.parametrize("cpus,gpus,flag", [(1, 2, "--gpus-per-trial 2"),
                                            (4, 0, "--cpus-per-trial 4"),
                                            (4, 2, "--gpus-per-trial 2 --cpus-per-trial 4")])
def test_a_trial_no_node_can_hold_is_refused_naming_the_flag(cpus, gpus, flag):
    with pytest.raises(ConfigError, match=f"^{flag}: no node of this cluster can hold one "
                                          r"trial \(nodes now: 1 x 2 CPUs 0 GPUs; no "
                                          "autoscaler adds nodes"):
        check_fits(TrialResources(cpus, gpus), CPU_BOX, [])


def test_the_cpus_a_gpu_share_brings_are_not_blamed_when_the_gpus_asked_for_are_short():
    # --gpus-per-trial 64 alone: the 8 CPUs that go with it by default are not a flag the
    # user gave, so the one line names the GPU request only.
    with pytest.raises(ConfigError, match=r"^--gpus-per-trial 64: no node"):
        check_fits(TrialResources(8, 64), CPU_BOX, [], given=("GPU",))


def test_a_trial_runs_on_one_node_so_resources_do_not_add_up_across_nodes():
    two_single_gpu_nodes = [{"CPU": 4.0, "GPU": 1.0}] * 2
    check_fits(TrialResources(1, 1), two_single_gpu_nodes, [])
    with pytest.raises(ConfigError, match="--gpus-per-trial 2: .* 2 x 4 CPUs 1 GPUs"):
        check_fits(TrialResources(1, 2), two_single_gpu_nodes, [])
    with pytest.raises(ConfigError, match="--gpus-per-trial 1 --cpus-per-trial 8"):
        check_fits(TrialResources(8, 1), [{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}], [])


def test_the_node_types_cluster_yaml_lets_the_autoscaler_add_count():
    import yaml

    from tuning.cluster import node_types_in

    config = yaml.safe_load((Path(__file__).parents[2] / "cluster.yaml").read_text())
    to_add = node_types_in(config)
    assert to_add == [{"CPU": 4.0, "GPU": 1.0}]  # the g5.xlarge workers, 0 to 8 of them
    head = [{"CPU": 8.0, "GPU": 0.0}]  # the m5.2xlarge head alone, before any worker
    check_fits(TrialResources(4, 1), head, to_add)  # pends until a GPU worker comes up
    with pytest.raises(ConfigError, match="--gpus-per-trial 2: .*the autoscaler can add: "
                                          "1 x 4 CPUs 1 GPUs"):
        check_fits(TrialResources(1, 2), head, to_add)


def test_node_types_without_stated_resources_might_hold_anything():
    from tuning.cluster import node_types_in

    config = {"available_node_types": {"gpu": {"max_workers": 4, "node_config": {}}}}
    assert node_types_in(config) is None
    check_fits(TrialResources(1, 8), CPU_BOX, None)  # not refused: it may fit


@pytest.mark.parametrize("trial, members, nodes, expected", [
    ((1, 0), 1, [2.0], {"cpu": 2.0, "gpu": 0.0}),  # the search is over: both cores
    ((1, 0), 3, [2.0], {"cpu": 1, "gpu": 0.0}),  # never less than the trial had
    ((2, 0), 2, [0.0, 8.0, 8.0], {"cpu": 8.0, "gpu": 0.0}),  # one node's worth at most
    ((1, 0.25), 1, [16.0], {"cpu": 1, "gpu": 0.25}),  # a GPU trial's share, unchanged
])
def test_a_retrain_member_gets_its_trials_resources_or_more_idle_cpus(trial, members, nodes,
                                                                      expected):
    from tuning.retrain import retrain_resources

    assert retrain_resources(TrialResources(*trial), members, nodes) == expected
