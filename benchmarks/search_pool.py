"""The search benchmark's table: full learning curves of every configuration of a discretised
default space (plus the notebook grid), trained once by the project's `Trainer` and cached.

A tabular benchmark in the manner of NAS-Bench/LCBench: every method's searcher and
scheduler are later replayed against these curves (`benchmarks.replay`), so a seed of a
method costs a fraction of a second instead of a real search. The space is small enough
to tabulate completely, so every configuration a searcher can propose has a curve: no
nearest-neighbour lookup, and a live Ray run in the same space trains exactly the
configurations of the table (`benchmarks.search` checks that).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

from gender.config import TrainConfig
from tuning.space import DEFAULT_SPACE, NOTEBOOK_GRID, validate_space

__all__ = ["SCALE", "SPACE", "WIDER", "QUICK_SPACE", "space_points", "grid_configs", "pool_configs",
           "config_key", "load_or_build", "Table", "TRAIN_SEED", "with_train_seeds"]

# Scaled for two CPU cores, identically for every method and the grid: this width and
# image size (as benchmarks/efficiency.py), and the whole square (as `--quick`).
SCALE = {"width": 0.125, "image_size": 32, "crop": 1.0}

# The default space (tuning.space.DEFAULT_SPACE), discretised so it can be tabulated in
# full: the notebook's network (VGG19 without batch norm, as its grid trains it) with the
# default space's heads, three of its optimisers (adamw, adam with decoupled decay, is
# alike at these weight decays) and the learning rate at three decades inside its range.
# Every other hyperparameter stays at TrainConfig's default, as do momentum (0.9) and alpha
# (0.99) where they apply. WIDER, the full benchmark's space, adds VGG11 and batch norm
# and the default configuration's own optimiser and learning rate (128 configurations):
# `gender tune` tries that configuration first, and a table without it would replay a
# different first trial from the one the command trains.
SPACE = validate_space({
    "arch": {"choices": ["vgg19"]},
    "batch_norm": {"choices": [False]},
    "head": {"choices": ["gap", "classic"]},
    "optimizer": {"choices": ["adam", "rmsprop", "sgd"]},
    "lr": {"choices": [1e-4, 1e-3, 1e-2]},
    **SCALE,
}, where="search benchmark space")
_DEFAULT = TrainConfig()


def _with(spec: dict, value) -> dict:
    return {"choices": sorted({*spec["choices"], value})}


WIDER = validate_space({**SPACE, "arch": {"choices": ["vgg11", "vgg19"]},
                        "batch_norm": {"choices": [True, False]},
                        "optimizer": _with(SPACE["optimizer"], _DEFAULT.optimizer),
                        "lr": _with(SPACE["lr"], _DEFAULT.lr)}, where="wider space")
# --quick: a smoke run of the same machinery on 8 configurations.
QUICK_SPACE = validate_space({**SPACE, "arch": {"choices": ["vgg11"]},
                              "head": {"choices": ["gap"]},
                              "optimizer": {"choices": ["adam", "sgd"]},
                              "lr": {"choices": [1e-3, 1e-2]}}, where="quick space")

# What changes a curve besides the configuration: the training code (hashed below), the
# data, the split seed and the thread count (CPU results differ across thread counts).
TRAINING_CODE = ("engine.py", "models.py", "augment.py", "config.py", "metrics.py",
                 "data/splits.py", "data/tensors.py")
# The first training seed of every configuration (and the split's seed): live runs with
# seed 0 train exactly its curves. A table may hold further training seeds of each
# configuration (`with_train_seeds`): a replay then reads one of them (`Table.tabulation`),
# so the spread across replays covers the training's own noise, not only the searcher's.
TRAIN_SEED = 0
EPOCH_FIELDS = ("val_f1", "val_accuracy", "val_precision", "val_recall", "val_auc",
                "val_loss", "train_loss", "epoch_seconds")


def _within_default(space: dict) -> None:
    """The discretised space must stay inside the default one (a test checks it)."""
    for name, spec in space.items():
        if name in SCALE:
            continue
        ref = DEFAULT_SPACE[name]
        for v in spec["choices"]:
            ok = v in ref["choices"] if "choices" in ref else ref["low"] <= v <= ref["high"]
            if not ok:
                raise ValueError(f"{name}={v!r} is outside the default space")


def space_points(space: dict) -> list[dict]:
    """Every configuration of a space of choices (the Cartesian product), as partial dicts."""
    names = list(space)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(space[n]["choices"] for n in names))]


def grid_configs(cap: int) -> list[TrainConfig]:
    """The notebook's 12 configurations at the benchmark's scale, trained to the cap."""
    return [TrainConfig(**SCALE, **p, epochs=cap, seed=TRAIN_SEED) for p in NOTEBOOK_GRID]


def pool_configs(space: dict, cap: int, grid_every: int = 1) -> list[TrainConfig]:
    """The space's configurations, then the grid's (every `grid_every`-th) not among them."""
    _within_default(space)
    configs = [TrainConfig(**p, epochs=cap, seed=TRAIN_SEED) for p in space_points(space)]
    seen = {config_key(c) for c in configs}
    return configs + [c for c in grid_configs(cap)[::grid_every] if config_key(c) not in seen]


def with_train_seeds(configs: list[TrainConfig], n: int) -> list[TrainConfig]:
    """Each configuration at training seeds TRAIN_SEED .. TRAIN_SEED + n - 1, seed by seed."""
    return [c.replace(seed=TRAIN_SEED + k) for k in range(n) for c in configs]


def config_key(cfg: TrainConfig) -> str:
    """How a configuration is looked up: every TrainConfig field, canonical JSON."""
    return json.dumps(cfg.to_dict(), sort_keys=True)


class Table:
    """Curves by configuration: `curve(cfg)` -> a list of per-epoch dicts (EPOCH_FIELDS);
    a curve that stops short of the cap ended in a diverged loss (`diverged(cfg)`). With
    several training seeds, `tabulation(k)` is the table of one of them; lookups on the
    whole table read the first."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.cap = doc["cap"]
        self.train_seeds = sorted({r["config"]["seed"] for r in doc["configs"]})
        self._rows = {r["key"]: r for r in doc["configs"]}
        first = [r for r in doc["configs"] if r["config"]["seed"] == self.train_seeds[0]]
        self._index = {r["key"]: i for i, r in enumerate(first)}

    def __len__(self) -> int:
        """Configurations (each counted once, whatever its training seeds)."""
        return len(self._index)

    def tabulation(self, k: int) -> Table:
        """The curves of the k-th training seed (cyclically): replay seed k reads these."""
        seed = self.train_seeds[k % len(self.train_seeds)]
        return Table({**self.doc, "configs": [r for r in self.doc["configs"]
                                              if r["config"]["seed"] == seed]})

    def row(self, cfg: TrainConfig) -> dict:
        """The configuration's curve, whatever the seed the searcher gave it."""
        try:
            return self._rows[config_key(cfg.replace(seed=self.train_seeds[0]))]
        except KeyError:
            raise KeyError(f"configuration not in the table: {cfg.to_dict()}") from None

    def index(self, cfg: TrainConfig) -> int:
        """The configuration's position in the table (how the JSON names it; the same in
        every tabulation)."""
        return self._index[self.row(cfg)["key"]]

    def curve(self, cfg: TrainConfig) -> list[dict]:
        return self.row(cfg)["epochs"]

    def diverged(self, cfg: TrainConfig) -> bool:
        return bool(self.row(cfg)["diverged"])

    def configs(self) -> list[TrainConfig]:
        """The configurations in `index` order (at the first training seed)."""
        return [TrainConfig(**r["config"]) for r in self.doc["configs"]
                if r["config"]["seed"] == self.train_seeds[0]]

    def best(self) -> float:
        """The best validation F1 of any curve."""
        return max(e["val_f1"] for r in self.doc["configs"] for e in r["epochs"])


# --- building the table: one configuration per task, two single-thread processes ---------

_DATA = None  # the worker's decoded data, prepared once per process


def _init_worker(data_dir: str, image_size: int, crop: float) -> None:
    global _DATA
    import torch

    from gender.pipeline import prepare

    torch.set_num_threads(1)  # as a Ray trial with one CPU (train_trial sets the same)
    _DATA = prepare(data_dir, image_size, split_seed=TRAIN_SEED, crop=crop).data


def _train(cfg_dict: dict) -> dict:
    import torch

    from gender.engine import Diverged, Trainer

    cfg = TrainConfig(**cfg_dict)
    trainer = Trainer(cfg, _DATA, torch.device("cpu"))
    epochs, diverged, t0 = [], False, time.perf_counter()
    try:
        for _ in range(cfg.epochs):
            t0 = time.perf_counter()
            m = trainer.run_epoch()
            epochs.append({k: float(m[k]) for k in EPOCH_FIELDS})
    except Diverged:
        # As train_trial reports it: one more epoch, F1 0, then the trial ends.
        diverged = True
        epochs.append({"val_f1": 0.0, "epoch_seconds": time.perf_counter() - t0})
    return {"key": config_key(cfg), "config": cfg.to_dict(), "epochs": epochs,
            "diverged": diverged}


def _code_hash() -> str:
    root = Path(__file__).resolve().parents[1] / "gender"
    h = hashlib.sha256()
    for name in TRAINING_CODE:
        h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return h.hexdigest()[:12]


def _identity(data_dir: Path) -> dict:
    import torch

    from gender.data.layouts import read_dataset

    return {"data_fingerprint": read_dataset(data_dir).fingerprint(),
            "split_seed": TRAIN_SEED, "threads": 1, "torch": torch.__version__}


def load_or_build(configs: list[TrainConfig], data_dir: Path, cache: Path,
                  workers: int = 2, rebuild: bool = False) -> Table:
    """The table for `configs`. Curves are cached one configuration a line in
    `cache/curves-<key>.jsonl`, the key hashing everything besides the configuration that
    changes a curve; configurations missing there are trained now and appended (so an
    interrupted build resumes, and another pool reuses what it shares). `rebuild`: start
    that file afresh."""
    # The key leaves the training code out: an edit to the engine that changes no curve
    # (most do not) must not throw away hours of curves. Each curve records the code that
    # trained it, and the table says which it holds; `rebuild` retrains them all.
    ident = _identity(data_dir)
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    code = _code_hash()
    path = cache / f"curves-{key}.jsonl"
    cache.mkdir(parents=True, exist_ok=True)
    if rebuild:
        path.unlink(missing_ok=True)
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[r["key"]] = r
    todo = [c for c in configs if config_key(c) not in done]
    build = {"workers": workers, "threads_per_worker": 1, "tabulated_now": len(todo),
             "cache": str(path), "training_code_now": code}
    if todo:
        # The deepest first, so the last tasks are short and both processes end together.
        todo.sort(key=lambda c: (-int(c.arch[3:]), c.batch_norm, c.head))
        print(f"search: tabulating {len(todo)} of {len(configs)} configurations "
              f"({configs[0].epochs} epochs each, {workers} processes of one thread) into "
              f"{path}", flush=True)
        t0 = time.perf_counter()
        ctx = mp.get_context("spawn")  # a fresh interpreter: no torch thread pool inherited
        with ctx.Pool(workers, _init_worker, (str(data_dir), *configs[0].input_view)) as pool, \
                path.open("a") as out:
            for i, r in enumerate(pool.imap_unordered(_train, [c.to_dict() for c in todo]), 1):
                r["training_code"] = code
                out.write(json.dumps(r) + "\n")
                out.flush()
                done[r["key"]] = r
                if i % 10 == 0 or i == len(todo):
                    el = time.perf_counter() - t0
                    print(f"search: {i}/{len(todo)} tabulated, {el / 60:.1f} min, about "
                          f"{el / i * (len(todo) - i) / 60:.0f} min left", flush=True)
        build.update(wall_seconds=time.perf_counter() - t0, loadavg_1m=os.getloadavg()[0])
    else:
        print(f"search: all {len(configs)} configurations from {path}")
    rows = [done[config_key(c)] for c in configs]
    build["training_code_of_curves"] = sorted({r.get("training_code", "unrecorded")
                                               for r in rows})
    return Table({"key": key, "identity": ident, "cap": configs[0].epochs, "build": build,
                  "configs": rows})
