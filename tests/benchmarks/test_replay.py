"""The search benchmark's replay: the real searchers and schedulers against a hand-made
table of learning curves (no training)."""

from __future__ import annotations

import pytest

from benchmarks.replay import OracleStopping, simulate
from benchmarks.search import (
    FULL,
    METHODS,
    QUICK,
    bohb_space,
    make_method,
    native,
    oracle_bounds,
    replay_all,
    summarise,
    trial_epochs_stopper,
)
from benchmarks.search_pool import (
    QUICK_SPACE,
    SCALE,
    SPACE,
    WIDER,
    Table,
    config_key,
    grid_configs,
    pool_configs,
    space_points,
    with_train_seeds,
)
from gender.config import TrainConfig
from tuning.space import default_point, trial_config

CAP = 6
P = {**QUICK, "cap": CAP, "grace_period": 2, "reduction_factor": 2, "budget": 60, "seeds": 2}
RUNGS = {2, 4, CAP}


def _row(cfg, f1s, diverged=False):
    return {"key": config_key(cfg), "config": cfg.to_dict(), "diverged": diverged,
            "epochs": [{"val_f1": f, "epoch_seconds": 1.0 + 0.01 * len(f1s)} for f in f1s]}


def _table(diverging: int | None = None) -> Table:
    """Each configuration climbs to its own plateau; the first sits at chance (one class
    predicted); `diverging`: that configuration's loss blows up in epoch 2."""
    rows = []
    for i, cfg in enumerate(pool_configs(QUICK_SPACE, CAP, grid_every=4)):
        top = 0.33 if i == 0 else 0.6 + 0.03 * i
        f1s = [round(top * (1 - 0.4 ** (e + 1)) + 0.002 * ((i + e) % 3), 4) for e in range(CAP)]
        if i == diverging:
            rows.append(_row(cfg, [f1s[0], 0.0], diverged=True))
        else:
            rows.append(_row(cfg, f1s))
    return Table({"cap": CAP, "configs": rows})


def _replay(name: str, seed: int = 0, table: Table | None = None, budget: int = 60):
    table = table or _table()
    return simulate(make_method(name, P, seed), table, budget=budget, workers=2, seed=seed)


def test_the_pool_covers_the_discretised_space_and_the_notebook_grid():
    keys = {config_key(c) for c in pool_configs(SPACE, CAP)}
    assert len(space_points(SPACE)) == 18
    assert all(config_key(c) in keys for c in grid_configs(CAP))
    assert len(keys) == len(pool_configs(SPACE, CAP))  # no configuration twice


@pytest.mark.parametrize("name", [m for m in METHODS if m != "grid"])
def test_every_searching_method_spends_exactly_the_budget(name):
    assert _replay(name).epochs == 60


def test_the_grid_stops_when_its_configurations_are_done():
    run = _replay("grid", budget=1000)
    assert len(run.trials) == len(grid_configs(CAP)[::4])
    assert run.epochs == CAP * len(run.trials)


@pytest.mark.parametrize("name", ["ours", "ray-asha", "optuna-sha", "optuna-hb", "random-asha"])
def test_early_stopping_methods_stop_trials_at_rungs_only(name):
    run = _replay(name)
    ended = run.trials[:-2]  # the last two were still running when the budget ran out
    assert {t["epochs"] for t in ended} <= RUNGS
    assert any(t["stopped"] for t in ended)


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_methods_without_early_stopping_run_every_trial_to_the_cap(name):
    run = _replay(name)
    assert {t["epochs"] for t in run.trials[:-2]} == {CAP}


def test_random_search_with_a_fixed_seed_is_reproducible():
    a, b, c = _replay("random", seed=3), _replay("random", seed=3), _replay("random", seed=4)
    assert a.trials == b.trials and a.best == b.best
    assert [t["config"] for t in a.trials] != [t["config"] for t in c.trials]


def test_a_diverged_configuration_ends_its_trial_with_f1_zero():
    first_of_grid = len(space_points(QUICK_SPACE))  # the grid follows the space in the pool
    table = _table(diverging=first_of_grid)
    run = _replay("grid", table=table, budget=1000)
    assert run.trials[0]["epochs"] == 2
    assert run.trials[0]["best_val_f1"] == \
        table.doc["configs"][first_of_grid]["epochs"][0]["val_f1"]


def test_the_chance_floor_stops_chance_level_trials_that_plain_asha_runs_on():
    # Every configuration predicts one class (F1 0.33): ASHA's first trial meets no
    # competition and runs to the cap; the floor stops each at the grace period.
    chance = Table({"cap": CAP, "configs": [_row(c, [0.33] * CAP)
                                            for c in pool_configs(QUICK_SPACE, CAP, 4)]})
    ours = simulate(make_method("ours", P, 0), chance, budget=12, workers=1, seed=0)
    plain = simulate(make_method("ours-plain-asha", P, 0), chance, budget=12, workers=1, seed=0)
    assert [t["epochs"] for t in ours.trials] == [2] * 6
    assert plain.trials[0]["epochs"] == CAP


def test_the_summary_measures_every_method_against_random_searchs_median_best():
    table = _table()
    runs = replay_all(table, P, methods=["random", "ours", "ray-asha", "grid"])
    s = summarise(table, runs, P)
    finals = sorted(r.best[-1] for r in runs["random"])
    assert s["random_final_best_median"] == pytest.approx(sum(finals) / 2)
    ours = s["methods"]["ours"]
    assert len(ours["seeds"]) == 2 and len(ours["curve_median"]) == P["budget"]
    assert s["target"]["fraction"] == ours["epochs_to_random_best"]["median"] / P["budget"]
    assert s["ours_versus"]["ray-asha"]["final_best"]["verdict"] in ("win", "tie", "loss")


def test_each_replay_seed_reads_the_curves_of_one_training_seed_in_turn():
    # Training seed 1 of every configuration plateaus at 0.5, seed 0 above it: a replay
    # on seed 1's tabulation can never see 0.8.
    configs = with_train_seeds(pool_configs(QUICK_SPACE, CAP, 4), 2)
    table = Table({"cap": CAP, "configs": [_row(c, [0.5 if c.seed else 0.8] * CAP)
                                           for c in configs]})
    assert len(table) == len(configs) // 2 and table.train_seeds == [0, 1]
    cfg = configs[3]
    assert table.index(cfg) == table.tabulation(1).index(cfg.replace(seed=1)) == 3
    runs = replay_all(table, P, methods=["random", "ours"], seeds=4)
    assert [r.best[-1] for r in runs["random"]] == [0.8, 0.5, 0.8, 0.5]
    s = summarise(table, runs, P)
    assert s["pool_best_val_f1"] == 0.8
    assert s["methods"]["ours"]["found_pool_best"] == 4  # each its own tabulation's best


def test_ours_as_gender_tune_runs_it_tries_the_default_configuration_first():
    p = {**P, "space": WIDER}
    table = Table({"cap": CAP, "configs": [_row(c, [0.7] * CAP)
                                           for c in pool_configs(WIDER, CAP, 4)]})
    point = default_point(WIDER)
    # The space holds the whole default configuration (at the benchmark's scale), so the
    # replay's first trial is the one `gender tune` trains first.
    searched = [n for n in WIDER if n not in SCALE]
    assert point == {n: getattr(TrainConfig(), n) for n in searched}
    assert point["optimizer"] == "adamw" and point["lr"] == 2e-3

    def first(name, seed):
        run = simulate(make_method(name, p, seed), table, budget=12, workers=2, seed=seed)
        cfg = table.configs()[run.trials[0]["config"]]
        return {k: getattr(cfg, k) for k in point}

    assert all(first("ours-default-first", s) == point for s in range(4))
    assert any(first("ours", s) != point for s in range(4))  # TPE's own start is random


def test_bohb_samples_only_configurations_of_the_table():
    # TuneBOHB takes a ConfigSpace, not our define-by-run space: every configuration it can
    # sample must be one the table holds, at the cap and the training seed.
    cs = bohb_space(WIDER, {"epochs": CAP, "seed": 0})
    keys = {config_key(c) for c in pool_configs(WIDER, CAP)}
    cs.seed(1)
    sampled = [trial_config(native(c)) for c in cs.sample_configuration(200)]
    assert all(config_key(c) in keys for c in sampled)
    assert len({config_key(c) for c in sampled}) > 64  # it reaches most of the 128


def test_the_trial_epochs_stopper_ends_the_run_at_the_budget():
    stop = trial_epochs_stopper(FULL["budget"])
    for i in range(FULL["budget"]):
        assert not stop.stop_all()
        assert stop(f"t{i % 3}", {"training_iteration": 1}) is False  # no trial alone
    assert stop.stop_all()


def _second_best_of_the_space(table: Table) -> float:
    """A bar that two of the quick space's configurations reach (the grid's are not
    proposed)."""
    space = table.configs()[:len(space_points(QUICK_SPACE))]  # the grid's follow
    return sorted(max(e["val_f1"] for e in table.curve(c)) for c in space)[-2]


@pytest.mark.parametrize("name", ["random-asha", "random"])
def test_no_stopping_rule_reaches_the_bar_sooner_than_the_oracle_on_the_same_proposals(name):
    # One worker: a method's trial-epochs to a bar are the epochs of the trials before the
    # first that reaches it, plus that trial's epochs to the bar. The oracle spends one epoch
    # on each trial that never gets there and none past the bar; random proposals do not
    # depend on results, so both see the same sequence.
    table = _table()
    bar = _second_best_of_the_space(table)
    for seed in range(4):
        oracle = simulate(OracleStopping(make_method("random", P, seed), bar), table,
                          budget=60, workers=1, seed=seed, jitter=0.0)
        other = simulate(make_method(name, P, seed), table, budget=60, workers=1, seed=seed,
                         jitter=0.0)
        assert oracle.epochs_to_reach(bar) <= other.epochs_to_reach(bar) < float("inf")
        for t in oracle.trials:
            curve = [e["val_f1"] for e in table.curve(table.configs()[t["config"]])]
            reach = next((i for i, f in enumerate(curve, 1) if f >= bar), None)
            last = t is oracle.trials[-1]  # may be cut short by the budget
            assert t["epochs"] == (reach or 1) or (last and t["epochs"] < (reach or 1))


def test_the_bounds_replay_every_seed_with_the_proposals_of_their_method():
    table = _table()
    bar = _second_best_of_the_space(table)
    bounds = oracle_bounds(table, P, bar)
    assert set(bounds) == {"random", "tpe"}
    assert all(b["reached_random_best"] == P["seeds"] for b in bounds.values())
    assert bounds["random"]["fraction_of_budget"] == (
        bounds["random"]["epochs_to_random_best"]["median"] / P["budget"])
