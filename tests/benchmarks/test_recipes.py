"""The recipes benchmark's paired comparison: seed by seed, the variant minus the default."""

import math

import pytest

from benchmarks.recipes import paired


def test_paired_differences_count_each_seed_by_its_sign_and_give_a_t_statistic():
    out = paired([0.90, 0.91, 0.92, 0.93], [0.92, 0.91, 0.95, 0.92])
    assert out["mean"] == pytest.approx(0.01)
    assert (out["above"], out["equal"], out["below"]) == (2, 1, 1)
    d = [0.02, 0.0, 0.03, -0.01]
    sd = math.sqrt(sum((x - 0.01) ** 2 for x in d) / 3)
    assert out["sd"] == pytest.approx(sd)
    assert out["t"] == pytest.approx(0.01 / (sd / 2))


def test_one_seed_or_no_spread_gives_no_t_statistic():
    assert math.isnan(paired([0.9], [0.95])["t"])
    assert math.isnan(paired([0.9, 0.8], [0.95, 0.85])["t"])  # identical differences
