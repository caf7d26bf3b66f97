"""What every benchmark shares: options, the machine record, data, Ray, tables, JSON.

A benchmark module exposes `run(opts) -> dict`; `benchmarks.__main__` adds the machine
and a timestamp and writes the dict to `results/bench/<name>.json`.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from gender.data.synth import default_data_dir
from gender.pipeline import write_json

__all__ = ["Options", "REAL_DATA", "machine", "data_dir", "fmt_table", "save", "tune_once",
           "trial_frames", "set_threads", "train_job", "job_pool"]

REPO = Path(__file__).resolve().parents[1]
# Real faces (CelebA subset) live beside the repository, never inside it (licence).
REAL_DATA = REPO.parent / "shared" / "data" / "celeba-gender"
STAMP = time.strftime("%Y%m%d-%H%M%S")  # one per invocation: names its runs folder


@dataclass(frozen=True)
class Options:
    quick: bool = False  # minutes, not tens of minutes: a smoke run of every benchmark
    real: bool = False  # data-bound benchmarks read REAL_DATA instead of synthetic faces
    out: Path = Path("results/bench")
    model: str | None = None  # inference, serve: an existing model.pt (or its folder)
    gpus_per_replica: float = 0.0  # serve: replicas on (a share of) a GPU
    rebuild: bool = False  # search: retrain its cached table of learning curves
    experiment: str | None = None  # members, seeds: a finished experiment's folder

    @property
    def runs(self) -> Path:
        """Where Ray experiments and trained models of this invocation go."""
        return self.out / "runs" / STAMP


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where a figure was measured. The load average and our niceness say how shared the
    machine was: on a busy box every rate here is a lower bound."""
    import ray

    return {
        "cpu_model": _cpu_model(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "ray": ray.__version__, "python": platform.python_version(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_1m": os.getloadavg()[0], "nice": os.nice(0),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def set_threads() -> int:
    """All cores to intra-op threads (the same count for every side of a comparison)."""
    n = os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def data_dir(opts: Options, name: str) -> Path | None:
    """The synthetic faces (drawn on first use), or the real ones with --real. None (and a
    line saying so) when --real is asked but the real data are absent."""
    if not opts.real:
        return default_data_dir().resolve()
    if (REAL_DATA / "labels.csv").is_file():
        print(f"{name}: real data from {REAL_DATA}")
        return REAL_DATA.resolve()
    print(f"{name}: --real: {REAL_DATA} is absent; skipped")
    return None


def save(obj: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(obj, path)
    return path


def _cell(v) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "never"
        if math.isnan(v):
            return "-"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def fmt_table(rows: list[dict], columns: dict[str, str]) -> str:
    """A markdown table (readable as plain text too); `columns`: key -> header."""
    cells = [[_cell(r.get(k)) for k in columns] for r in rows]
    heads = list(columns.values())
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(heads), rule] + [line(c) for c in cells])


def tune_once(settings, verbose: int = 0):
    """The steps of `tuning.experiment.run_experiment` up to the end of the search (data
    into the object store once, `build_tuner`, fit) plus `trials.csv`; no retrain and no
    HTML report, which a measurement does not need. Returns Ray's ResultGrid."""
    from tuning.cluster import start_ray
    from tuning.experiment import build_tuner, input_views, put_data
    from tuning.outputs import trials_table, write_trials

    settings.save()
    start_ray(settings.address, quiet=True)
    data, _ = put_data(settings, input_views(settings), fresh_splits=True)
    results = build_tuner(settings, data, verbose=verbose).fit()
    write_trials(trials_table(results, settings.max_epochs), settings.exp_dir / "trials.csv")
    return results


def trial_frames(exp_dir: Path) -> pd.DataFrame:
    """Every epoch of every trial from the trials' own `progress.csv` files."""
    frames = []
    for csv in sorted(Path(exp_dir).glob("*/progress.csv")):
        df = pd.read_csv(csv)
        if len(df):
            frames.append(df.assign(trial=csv.parent.name))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def job_pool() -> ProcessPoolExecutor:
    """Processes for `train_job`: one per core, at most two (one thread each), spawned
    because a forked child of a process that already ran torch may hang in OpenMP."""
    return ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1),
                               mp_context=mp.get_context("spawn"))


def train_job(data: str, cfg_dict: dict, split: tuple[str, ...], until: int | None,
              evaluate_on: str, train_fraction: float = 1.0, fraction_seed: int = 0,
              views: bool = False, split_seed: int = 0, splits_csv: str | None = None) -> dict:
    """One training run with the project's loop, one thread, meant for a fresh worker
    process: -> its per-epoch validation F1 (when training on train only) and its final
    metrics on `evaluate_on`. `train_fraction`: keep that share of the training rows
    (whole identities drawn at random) for learning curves. `views`: also P(male) of each
    `evaluate_on` picture as it is and mirrored (`gender.ensemble.view_probs`), and the
    labels, for comparing export recipes. `split_seed`, `splits_csv`: an experiment's own
    split (`gender.pipeline.prepare`)."""
    import numpy as np

    from gender.config import TrainConfig
    from gender.engine import Trainer, evaluate
    from gender.pipeline import prepare

    torch.set_num_threads(1)
    cfg = TrainConfig.from_dict(cfg_dict)
    prep = prepare(data, cfg.image_size, split_seed=split_seed, splits_csv=splits_csv,
                   crop=cfg.crop)
    if train_fraction < 1.0:
        rows = prep.data.splits["train"]
        ids = prep.splits.set_index("image").loc[[prep.index.samples[i].name for i in rows],
                                                 "identity"].fillna("").to_numpy()
        groups = np.unique(ids)
        keep = np.random.default_rng(fraction_seed).permutation(groups)[
            : int(round(train_fraction * len(groups)))]
        prep.data.splits["train"] = rows[np.isin(ids, keep)]
    t0 = time.perf_counter()
    trainer = Trainer(cfg, prep.data, "cpu", train_split=split,
                      eval_split="val" if split == ("train",) else None)
    history = trainer.fit(until=until)
    rows = prep.data.splits[evaluate_on]
    ev = evaluate(trainer.eval_model, prep.data, rows, "cpu")
    ev.pop("probs")
    out = {"val_f1_curve": [h["val_f1"] for h in history if "val_f1" in h],
           "final": {k: ev[k] for k in ("accuracy", "f1", "auc", "recall_female",
                                        "recall_male")},
           "epochs": trainer.epoch, "n_train": int(len(trainer.train_idx)),
           "seconds": time.perf_counter() - t0}
    if views:
        from gender.ensemble import view_probs

        out["views"] = view_probs(trainer.eval_model, prep.data.images[rows].numpy())
        out["labels"] = prep.data.labels[rows].numpy()
    return out
