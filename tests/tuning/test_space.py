"""The search space: conditional parameters, file overrides and their validation."""

import json

import optuna
import pytest

from gender.errors import ConfigError, UserError
from tuning.space import DEFAULT_SPACE, NOTEBOOK_GRID, define_by_run, load_space, trial_config


def sample(space, n=40, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    fn = define_by_run(space, {"epochs": 3})
    out = []
    for _ in range(n):
        t = study.ask()
        fn(t)
        out.append(dict(t.params))
        study.tell(t, 0.0)
    return out


def test_momentum_exists_only_for_sgd_and_rmsprop_and_alpha_only_for_rmsprop():
    for params in sample(load_space(None)):
        assert ("momentum" in params) == (params["optimizer"] in ("sgd", "rmsprop"))
        assert ("alpha" in params) == (params["optimizer"] == "rmsprop")


def test_every_sampled_configuration_is_a_valid_train_config():
    for params in sample(load_space(None)):
        trial_config({**params, "epochs": 3})


def test_space_file_narrows_the_defaults(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("arch: {choices: [vgg16]}\nlr: {low: 0.0001, high: 0.001, log: true}\n"
                 "batch_norm: true\n")
    space = load_space(f)
    assert space["arch"] == {"choices": ["vgg16"]}
    assert space["batch_norm"] == {"choices": [True]}
    assert space["optimizer"] == DEFAULT_SPACE["optimizer"]
    for params in sample(space, n=10):
        assert params["arch"] == "vgg16" and 1e-4 <= params["lr"] <= 1e-3


def test_space_file_in_json_is_read(tmp_path):
    f = tmp_path / "space.json"
    f.write_text(json.dumps({"width": {"choices": [0.5, 1.0]}}))
    assert load_space(f)["width"] == {"choices": [0.5, 1.0]}


@pytest.mark.parametrize("text,needle", [
    ("learning_rate: {low: 0.1, high: 1}", "unknown parameter 'learning_rate'"),
    ("lr: {low: 0.1, high: 0.01}", "low < high"),
    ("lr: {low: 0, high: 0.1, log: true}", "low > 0"),
    ("arch: {choices: [vgg12]}", "arch='vgg12'"),
    ("arch: {choices: []}", "non-empty list"),
    ("image_size: {low: 32, high: 64}", "use choices"),
    ("crop: {low: 0.6, high: 0.9}", "decoded once for each crop"),
    ("crop: {choices: [0.7, 1.2]}", "crop=1.2"),
    ("dropout: {low: 0, high: 1.5}", "dropout=1.5"),
])
def test_bad_space_files_are_refused_naming_the_file_and_rule(tmp_path, text, needle):
    f = tmp_path / "space.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_space(f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_unparseable_space_file_is_a_user_error(tmp_path):
    f = tmp_path / "space.yaml"
    f.write_text("arch: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_space(f)


def test_notebook_grid_is_the_original_twelve_configurations():
    assert len(NOTEBOOK_GRID) == 12
    assert {(p["arch"], p["optimizer"]) for p in NOTEBOOK_GRID} == {
        (a, o) for a in ("vgg16", "vgg19") for o in ("adam", "rmsprop")}
    assert sorted({p["lr"] for p in NOTEBOOK_GRID}) == [5e-5, 1e-4]
    assert sum(p["optimizer"] == "rmsprop" for p in NOTEBOOK_GRID) == 8

