"""Intervals, calibration and export recipes: what `metrics.json` promises a reader."""

import numpy as np
import pytest
import torch

from gender.calibration import apply_temperature, fit_temperature, logit
from gender.config import TrainConfig
from gender.ensemble import combine, compare_recipes, view_probs
from gender.errors import ConfigError
from gender.export import Deployable, load_model, save_model
from gender.metrics import calibration, interval_metrics, wilson_interval
from gender.models import build_model


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson_interval(81, 100)  # Wilson 1927; e.g. Agresti & Coull 1998, table 1
    assert lo == pytest.approx(0.7222, abs=1e-3) and hi == pytest.approx(0.8749, abs=1e-3)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)


def _calibrated(n=20000, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return y, 1 / (1 + np.exp(-scale * z))


def test_a_calibrated_model_has_a_small_ece_and_an_overconfident_one_does_not():
    y, p = _calibrated()
    assert calibration(y, p)["ece"] < 0.01
    y, p = _calibrated(scale=3.0)
    assert calibration(y, p)["ece"] > 0.05


def test_temperature_scaling_recovers_the_overconfidence_and_keeps_every_label():
    y, p = _calibrated(scale=3.0)
    t = fit_temperature(y, p)
    assert t == pytest.approx(3.0, rel=0.05)
    q = apply_temperature(p, t)
    assert calibration(y, q)["ece"] < 0.01
    assert np.array_equal(q >= 0.5, p >= 0.5)


def test_reliability_bins_cover_every_image_once():
    y, p = _calibrated(n=1000)
    table = calibration(y, p)["reliability"]
    assert sum(b["n"] for b in table) == 1000
    assert all(0.5 <= b["low"] < b["high"] <= 1.0 for b in table)


def test_interval_metrics_give_per_class_recall_and_its_gap():
    y = np.array([0] * 10 + [1] * 10)
    p = np.array([0.1] * 9 + [0.9] + [0.8] * 10)  # one woman called a man
    m = interval_metrics(y, p)
    assert (m["n_female"], m["n_male"]) == (10, 10)
    assert m["recall_gap"] == pytest.approx(0.1)
    assert m["recall_female_ci95"][0] < 0.9 < m["recall_female_ci95"][1]


@pytest.fixture(scope="module")
def members():
    torch.manual_seed(0)
    cfgs = [TrainConfig(width=0.125, image_size=32, seed=s) for s in (0, 1)]
    return [build_model(c).eval() for c in cfgs], cfgs


def test_the_exported_module_combines_exactly_as_the_recipe_comparison_does(members, tmp_path):
    models, cfgs = members
    x = np.random.default_rng(0).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    views = [view_probs(m, x) for m in models]
    expected = apply_temperature(combine(views, 2, tta=True), 1.7)
    save_model(tmp_path / "model.pt", models, cfgs, tta_flip=True, temperature=1.7)
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.module.tta_flip and loaded.module.temperature == 1.7
    with torch.no_grad():
        got = loaded.module(torch.from_numpy(x)).numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_a_single_model_without_temperature_is_plain_sigmoid(members):
    model = members[0][0]
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        a = Deployable([model])(x)
        b = torch.sigmoid(model((x.float() / 255 - Deployable([model]).mean)
                                / Deployable([model]).std))
    assert torch.allclose(a, b)


def test_recipe_comparison_has_a_row_per_members_flip_and_temperature():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    views = [np.clip(np.stack([y * 0.6 + 0.2 + rng.normal(0, 0.2, 200)] * 2), 0.01, 0.99)
             for _ in range(3)]
    rows = compare_recipes(views, y, 3)
    assert len(rows) == 3 * 2 * 2
    assert {(r["members"], r["tta_flip"], r["temperature"]) for r in rows} == {
        (k, t, c) for k in (1, 2, 3) for t in (False, True) for c in ("off", "out of fold")}
    assert all(0 <= r["ece"] <= 1 and 0 <= r["accuracy"] <= 1 for r in rows)


def test_logit_is_the_inverse_of_the_sigmoid():
    p = np.array([0.1, 0.5, 0.9])
    assert np.allclose(1 / (1 + np.exp(-logit(p))), p)


def test_a_model_file_keeps_its_crop_and_one_from_before_the_field_loads_uncropped(
        members, tmp_path):
    models, cfgs = members
    save_model(tmp_path / "model.pt", models, cfgs)
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.crop == cfgs[0].crop == 0.7
    assert loaded.preprocess["crop_fraction"] == 0.7
    # A file written before `crop` existed: its members were trained on the whole square.
    blob = torch.load(tmp_path / "model.pt", weights_only=True)
    for m in blob["members"]:
        del m["config"]["crop"]
    torch.save(blob, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").crop == 1.0
    with pytest.raises(ConfigError, match="share one image size and crop"):
        save_model(tmp_path / "mixed.pt", models, [cfgs[0], cfgs[1].replace(crop=1.0)])
