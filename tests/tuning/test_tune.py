"""One real tune run on a local Ray with 2 CPUs, synthetic 32 px faces: ASHA, trials.csv,
the diverged trial, the retrain on train+val and the exported best model."""

import json

import numpy as np
import pandas as pd
import pytest
import ray
import torch

from gender.predict import Predictor
from tuning.experiment import input_views, put_data, run_experiment
from tuning.outputs import STATUSES
from tuning.retrain import choose_trial_members
from tuning.settings import TuneSettings
from tuning.space import QUICK_SPACE, load_space, trial_config

GOOD = {"arch": "vgg11", "batch_norm": True, "width": 0.125, "optimizer": "adamw", "lr": 3e-3,
        "augment": 0.2, "batch_size": 32, "dropout": 0.1, "head": "gap"}
DIVERGING = {"arch": "vgg11", "batch_norm": False, "width": 0.125, "head": "classic",
             "optimizer": "sgd", "lr": 10.0, "momentum": 0.99, "augment": 0.0}
HOPELESS = {**GOOD, "lr": 1e-6, "optimizer": "adam"}


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray on 2 CPUs for the module's experiments, as a notebook keeps one:
    starting Ray takes longer than most of the runs here."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def experiment(local_ray, synth_data, tmp_path_factory):
    space = load_space(None, base=QUICK_SPACE)
    settings = TuneSettings(data=str(synth_data), name="exp",
                            results=str(tmp_path_factory.mktemp("results")), num_samples=7,
                            max_epochs=3, grace_period=1, reduction_factor=2, space=space,
                            enqueue=[GOOD, DIVERGING, HOPELESS], seed=0, seeds=1)
    summary = run_experiment(settings, verbose=0)
    trials = pd.read_csv(settings.exp_dir / "trials.csv")
    return settings, summary, trials


def test_trials_csv_has_one_complete_row_per_trial(experiment):
    settings, _, trials = experiment
    assert len(trials) == 7
    assert set(trials["status"]) <= set(STATUSES)
    for col in ("arch", "optimizer", "lr", "epochs", "status", "seconds"):
        assert trials[col].notna().all(), col
    trained = trials[trials["status"].isin(["completed", "stopped early"])]
    for col in ("best_val_f1", "best_val_auc", "best_latency_ms_p50", "best_images_per_s"):
        assert trained[col].notna().all(), col
    assert (trials["epochs"] >= 1).all() and (trials["epochs"] <= 3).all()


def test_asha_stops_some_trials_early(experiment):
    _, _, trials = experiment
    assert (trials["status"] == "stopped early").sum() >= 1
    assert (trials["status"] == "completed").sum() >= 1


def test_conditional_parameters_appear_only_where_they_apply(experiment):
    _, _, trials = experiment
    uses_momentum = trials["optimizer"].isin(["sgd", "rmsprop"])
    assert trials.loc[uses_momentum, "momentum"].notna().all()
    assert trials.loc[~uses_momentum, "momentum"].isna().all()
    assert trials.loc[trials["optimizer"] != "rmsprop", "alpha"].isna().all()


def test_a_diverging_configuration_ends_as_diverged_and_is_never_best(experiment):
    _, _, trials = experiment
    row = trials[(trials["lr"] == 10.0) & (trials["optimizer"] == "sgd")]
    assert list(row["status"]) == ["diverged"]
    best = json.loads((experiment[0].exp_dir / "best" / "metrics.json").read_text())
    assert best["trial_id"] != str(row["trial_id"].iloc[0])


def test_tensorboard_event_files_are_written_per_trial(experiment):
    exp = experiment[0].exp_dir
    trial_dirs = [p for p in exp.iterdir() if p.is_dir() and p.name.startswith("trial_")]
    assert len(trial_dirs) == 7
    for d in trial_dirs:
        assert list(d.glob("events.out.tfevents*")), d


def test_retrain_used_train_plus_val_and_tested_once(experiment):
    exp = experiment[0].exp_dir
    splits = pd.read_csv(exp / "splits.csv")
    m = json.loads((exp / "best" / "metrics.json").read_text())
    assert m["trained_on"] == "train+val"
    assert m["n_train"] == int(splits["split"].isin(["train", "val"]).sum())
    assert m["n_test"] == int((splits["split"] == "test").sum())
    for key in ("f1", "accuracy", "precision", "recall", "auc", "recall_female", "recall_male",
                "latency_ms_p50", "images_per_s_batch64", "train_seconds"):
        assert np.isfinite(m[key]), key


def test_the_seeds_benchmark_trains_the_best_trial_as_the_retrain_does_on_its_split(
        experiment):
    from benchmarks.seeds import best_trial
    from gender.pipeline import prepare

    settings, _, trials = experiment
    exp = settings.exp_dir
    t = best_trial(str(exp))
    config = json.loads((exp / "best" / "config.json").read_text())["members"][0]
    assert (t["trial_id"], t["config"]) == (config["trial_id"], config["config"])
    row = trials[trials["trial_id"].astype(str) == t["trial_id"]].iloc[0]
    assert t["until"] == int(row["best_epoch"]) == config["retrain_epochs"]
    # Its training runs see the experiment's own validation faces, not a fresh split's.
    assert t["split"] == {"split_seed": settings.split_seed,
                          "splits_csv": str(exp / "splits.csv")}
    prep = prepare(t["data"], t["config"]["image_size"], crop=t["config"]["crop"], **t["split"])
    val = pd.read_csv(exp / "splits.csv").query("split == 'val'")["image"]
    assert [prep.index.samples[i].name for i in prep.data.splits["val"]] == list(val)


def test_best_model_files_load_and_predict_well_above_chance(experiment, synth_data):
    exp = experiment[0].exp_dir
    for name in ("model.pt", "config.json", "metrics.json", "splits.csv",
                 "test_predictions.csv"):
        assert (exp / "best" / name).is_file(), name
    predictor = Predictor(exp / "best")
    splits = pd.read_csv(exp / "splits.csv")
    test = splits[splits["split"] == "test"]
    x = np.stack([predictor.decode(synth_data / n) for n in test["image"]])
    p = predictor.predict_arrays(x)
    acc = ((p >= 0.5) == test["label"].to_numpy()).mean()
    assert acc > 0.7
    # The probabilities saved with the test metrics are the model file's own.
    saved = pd.read_csv(exp / "best" / "test_predictions.csv")
    assert list(saved["image"]) == list(test["image"])
    assert np.allclose(saved["prob_male"], p, atol=1e-5)


def test_a_time_budget_alone_starts_trials_until_it_runs_out(local_ray, synth_data, tmp_path):
    settings = TuneSettings(data=str(synth_data), name="budget", results=str(tmp_path),
                            num_samples=None, time_budget=30, max_epochs=1,
                            grace_period=1, space=load_space(None, base=QUICK_SPACE),
                            retrain=False, seed=0)
    summary = run_experiment(settings, verbose=0)
    saved = json.loads((settings.exp_dir / "experiment.json").read_text())
    assert saved["num_samples"] is None and saved["time_budget"] == 30
    assert settings.ray_num_samples == -1  # Ray: no count, the budget ends it
    # More trials than run at once (2): new ones kept starting until the budget ran out
    # (a budget of several one-epoch trials' length, so a loaded machine still fits three).
    assert summary["trials"] >= 3, summary


def test_an_open_number_of_trials_needs_a_time_budget(tmp_path):
    from gender.errors import ConfigError

    with pytest.raises(ConfigError, match="--time-budget"):
        TuneSettings(data="x", name="n", results=str(tmp_path), num_samples=None)


def test_an_experiment_saved_before_seeds_or_trial_members_existed_retrains_as_it_did(
        tmp_path):
    settings = TuneSettings(data="x", name="old", results=str(tmp_path),
                            space=load_space(None), seeds=2)
    assert settings.trial_members is None  # new experiments: chosen on validation
    settings.save()
    saved = settings.exp_dir / "experiment.json"
    d = json.loads(saved.read_text())
    loaded = TuneSettings.load(settings.exp_dir)
    assert (loaded.seeds, loaded.trial_members) == (2, None)
    del d["seeds"], d["trial_members"]  # as an older version wrote it
    saved.write_text(json.dumps(d))
    loaded = TuneSettings.load(settings.exp_dir)
    # Its retrain trained one seed, and no trial's checkpoint joined the export.
    assert (loaded.seeds, loaded.trial_members) == (1, 0)


def test_an_experiment_saved_before_the_crop_existed_resumes_on_the_whole_square(tmp_path):
    settings = TuneSettings(data="x", name="old", results=str(tmp_path),
                            space=load_space(None))
    settings.save()
    assert input_views(TuneSettings.load(settings.exp_dir)) == [(64, 0.7), (96, 0.7)]
    saved = settings.exp_dir / "experiment.json"
    d = json.loads(saved.read_text())
    del d["space"]["crop"]  # as an older version wrote it: its trials decoded crop 1.0
    saved.write_text(json.dumps(d))
    assert input_views(TuneSettings.load(settings.exp_dir)) == [(64, 1.0), (96, 1.0)]
    # ...and its trials' parameters, which have no crop, say the same.
    assert trial_config({"arch": "vgg11"}).crop == 1.0
    assert trial_config({"arch": "vgg11", "crop": 0.7}).crop == 0.7


def test_the_retrain_trains_the_best_trials_own_config_with_every_searched_field(
        local_ray, synth_data, tmp_path):
    # Fields outside the default space: before, trials.csv dropped them and the retrain
    # rebuilt its config from that table, so `ema: 0` came back as the default EMA.
    space = load_space(None, base={**QUICK_SPACE, "arch": {"choices": ["vgg11"]},
                                   "width": {"choices": [0.125]}})
    space.update({"ema": {"choices": [0.0]}, "lr_schedule": {"choices": ["constant"]},
                  "balance": {"choices": ["undersample"]}, "mixup": {"choices": [0.2]}})
    settings = TuneSettings(data=str(synth_data), name="fields", results=str(tmp_path),
                            num_samples=2, max_epochs=2, grace_period=2, space=space,
                            seed=0, seeds=2)
    run_experiment(settings, verbose=0)
    best = settings.exp_dir / "best"
    export = json.loads((best / "config.json").read_text())
    members = export["members"]
    for member in members:
        cfg = member["config"]
        assert (cfg["ema"], cfg["lr_schedule"], cfg["balance"], cfg["mixup"]) == (
            0.0, "constant", "undersample", 0.2)
    # Two seeds: the best trial's configuration as it trained, then with the next seed;
    # nothing else differs between them.
    retrained, from_trials = members[:2], members[2:]
    assert [m["seed"] for m in retrained] == [0, 1]
    assert retrained[0]["trial_id"] == retrained[1]["trial_id"] == retrained[0]["member"]
    assert ({**retrained[0]["config"], "seed": 1} == retrained[1]["config"])
    assert {m["trained_on"] for m in retrained} == {"train+val"}
    # The trials' own checkpoints join as many as the validation comparison chose.
    m = json.loads((best / "metrics.json").read_text())
    k = choose_trial_members(m["validation_comparison"], tta=True, calibrate=True)
    assert export["trial_members"] == len(from_trials) == k >= 1
    assert from_trials[0]["trial_id"] == retrained[0]["trial_id"]
    loaded = Predictor(best).model
    assert len(loaded.members) == 2 + k
    for member, model in zip(from_trials, loaded.members[2:], strict=True):
        assert member["trained_on"].startswith("train (") and member["member"].endswith("-trial")
        # ...with the very weights of the trial's checkpoint of that epoch.
        states = [torch.load(f, weights_only=True) for f in
                  (settings.exp_dir / f"trial_{member['trial_id']}").rglob("trainer.pt")]
        ckpt = [s for s in states if s["epoch"] == member["epochs"]][0]
        weights = ({k.removeprefix("module."): v for k, v in ckpt["ema"].items()}
                   if "ema" in ckpt else ckpt["model"])  # ema 0: the weights themselves
        assert all(torch.equal(v, weights[n]) for n, v in model.state_dict().items())
    assert loaded.config.ema == 0.0  # and the model file says so too
    trials = pd.read_csv(settings.exp_dir / "trials.csv")
    assert set(trials["ema"]) == {0.0} and set(trials["balance"]) == {"undersample"}
    # Undersampling acted on the retrain's own rows: train+val with the classes equalised.
    splits = pd.read_csv(settings.exp_dir / "splits.csv")
    fit_rows = splits[splits["split"].isin(["train", "val"])]
    m = json.loads((best / "metrics.json").read_text())
    assert m["n_train"] == 2 * int(fit_rows["label"].value_counts().min())


def test_the_trial_members_are_the_top_k_of_best_validation_accuracy_then_the_fewest():
    def row(k, acc, tta=True, temperature="out of fold"):
        return {"members": k, "tta_flip": tta, "temperature": temperature, "accuracy": acc,
                "nll": 0.1}

    rows = [row(1, 0.95), row(2, 0.96), row(3, 0.97), row(3, 0.99, tta=False),
            row(1, 0.99, temperature="off")]
    assert choose_trial_members(rows, tta=True, calibrate=True) == 3
    assert choose_trial_members(rows, tta=False, calibrate=True) == 3
    assert choose_trial_members(rows, tta=True, calibrate=False) == 1
    rows[2]["accuracy"] = 0.96  # a third member that changes no answer is left out
    assert choose_trial_members(rows, tta=True, calibrate=True) == 2


def test_two_training_seeds_test_on_the_same_faces(local_ray, synth_data, tmp_path):
    from gender.pipeline import prepare

    # Without a partition file, as in the real data: the split is drawn, by its own seed.
    data = tmp_path / "no-partition"
    data.mkdir()
    (data / "img_align_celeba").symlink_to(synth_data / "img_align_celeba")
    for name in ("list_attr_celeba.txt", "identity_CelebA.txt"):
        (data / name).write_bytes((synth_data / name).read_bytes())
    tests = []
    for seed in (0, 1):  # the experiment's split, as `gender tune --seed` writes it
        s = TuneSettings(data=str(data), name=f"seed{seed}", results=str(tmp_path),
                         space=load_space(None, base=QUICK_SPACE), seed=seed)
        put_data(s, input_views(s), fresh_splits=True)
        sp = pd.read_csv(s.exp_dir / "splits.csv")
        tests.append(set(sp.loc[sp["split"] == "test", "image"]))
    assert tests[0] == tests[1]
    # ...while the split's own seed does move it.
    c = prepare(data, 32, split_seed=1)
    assert set(c.splits.loc[c.splits["split"] == "test", "image"]) != tests[0]


def test_a_resume_finds_a_trials_newest_checkpoint_when_the_saved_state_names_a_replaced_one(
        experiment, tmp_path):
    # A driver killed after Ray replaced a trial's checkpoint but before it saved the
    # experiment state: the state names a checkpoint folder that is gone.
    import shutil
    from pathlib import Path

    from ray.tune import ExperimentAnalysis

    from tuning.experiment import recover_named_checkpoints

    settings, _, _ = experiment
    copy = tmp_path / "exp"
    shutil.copytree(settings.tune_path, copy)
    trial = next(t for t in ExperimentAnalysis(str(copy)).trials if t.checkpoint is not None)
    named = Path(trial.checkpoint.path)
    assert named.is_relative_to(copy) and named.is_dir()
    newer = named.with_name("checkpoint_999999")
    named.rename(newer)
    weights = sorted(p.name for p in newer.iterdir())
    assert recover_named_checkpoints(str(copy)) == [trial.trial_id]
    assert named.is_dir() and not newer.exists()
    assert sorted(p.name for p in named.iterdir()) == weights
    assert recover_named_checkpoints(str(copy)) == []  # nothing left to recover
