"""From a data folder to a measured model: the steps `gender train` and the tuner's
retrain share (load + split + decode once; test once + write the outputs)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gender.config import TrainConfig
from gender.data.layouts import DatasetIndex, read_dataset
from gender.data.splits import make_splits, read_splits, undersample, write_splits
from gender.data.tensors import TensorData, load_arrays
from gender.engine import Trainer, evaluate
from gender.errors import UserError
from gender.export import export_torchscript, save_model
from gender.metrics import measure_latency, measure_throughput

__all__ = ["Prepared", "prepare", "default_data_dir", "resolve_data", "finish_run",
           "write_json", "environment"]

DEFAULT_DATA = Path("data/synthetic")
# 6,000 faces: with 3,000 even a good configuration overfits at ~0.90 F1, which leaves
# nothing for tuning to show; a bad learning rate still sits at chance.
DEFAULT_SYNTH = {"n": 6000, "seed": 0, "size": 64}


def default_data_dir() -> Path:
    """`data/synthetic`, drawn on first use so every command works out of the box.

    An earlier default drawn with other arguments is redrawn (synthesize only replaces
    its own outputs, never a user's folder)."""
    from gender.data.synth import synth_args, synthesize

    if synth_args(DEFAULT_DATA) != DEFAULT_SYNTH:
        why = "first use" if not DEFAULT_DATA.exists() else "the default set changed"
        print(f"gender: drawing synthetic faces into {DEFAULT_DATA} ({why})", file=sys.stderr)
        synthesize(DEFAULT_DATA, **DEFAULT_SYNTH)
    return DEFAULT_DATA


def resolve_data(path: str | None) -> Path:
    return default_data_dir() if path is None else Path(path)


@dataclass
class Prepared:
    index: DatasetIndex
    splits: pd.DataFrame  # image, label, identity, split (after any undersampling)
    data: TensorData


def prepare(data_dir: str | Path, image_size: int, seed: int = 0, balance: str = "weighted",
            splits_csv: str | Path | None = None) -> Prepared:
    """Read, split (or reuse a saved split) and decode a dataset once."""
    index = read_dataset(data_dir)
    df = read_splits(splits_csv, index) if splits_csv else make_splits(index, seed=seed)
    if balance == "undersample" and not splits_csv:
        df = undersample(df, seed=seed)
    arrays = load_arrays(index, image_size)
    pos = {s.name: i for i, s in enumerate(index.samples)}
    rows = np.array([pos[n] for n in df["image"]], dtype=np.int64)
    splits = {name: rows[(df["split"] == name).to_numpy()] for name in ("train", "val", "test")}
    labels = np.array([s.label for s in index.samples], dtype=np.float32)
    return Prepared(index, df, TensorData.from_arrays(arrays, labels, splits))


def write_json(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def environment() -> dict:
    import ray
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torchvision": torchvision.__version__, "ray": ray.__version__,
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "command": " ".join(sys.argv)}


def finish_run(trainer: Trainer, prep: Prepared, out: Path, train_seconds: float,
               extra: dict | None = None, torchscript: bool = False) -> dict:
    """Test once on the held-out split, time inference, write every output file."""
    out.mkdir(parents=True, exist_ok=True)
    cfg = trainer.cfg
    test = evaluate(trainer.eval_model, prep.data, prep.data.splits["test"], trainer.device)
    test.pop("probs")
    cpu = torch.device("cpu")
    model = trainer.eval_model.to(cpu).eval()
    # Timings on this machine's CPU: what `gender predict` will see here.
    metrics = {
        **{k: v for k, v in test.items()}, "n_test": int(len(prep.data.splits["test"])),
        **measure_latency(model, cfg.image_size, cpu, iters=30),
        "images_per_s_batch64": measure_throughput(model, cfg.image_size, cpu, 64),
        "train_seconds": train_seconds, "epochs": trainer.epoch,
        "data": str(prep.index.root), "data_fingerprint": prep.index.fingerprint(),
        **(extra or {}),
    }
    save_model(out / "model.pt", model, cfg, metrics)
    if torchscript:
        export_torchscript(model, cfg.image_size, out / "model.ts")
    write_json(cfg.to_dict(), out / "config.json")
    write_json(metrics, out / "metrics.json")
    write_json(environment(), out / "environment.json")
    pd.DataFrame(trainer.history).to_csv(out / "history.csv", index=False)
    write_splits(prep.splits, out / "splits.csv")
    return metrics


def check_out_dir(out: Path, flag: str = "--out") -> Path:
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: exists and is not a directory")
    return out


def train_command(cfg: TrainConfig, data_dir: Path, out: Path, device: torch.device,
                  progress: bool = True) -> dict:
    """`gender train`: one run without Ray."""
    from tqdm import tqdm

    check_out_dir(out)
    prep = prepare(data_dir, cfg.image_size, cfg.seed, cfg.balance)
    trainer = Trainer(cfg, prep.data, device)
    n = len(trainer.train_idx)
    bar = None

    def on_step(k: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=n, desc=f"epoch {trainer.epoch + 1}/{cfg.epochs}", unit="img",
                       leave=True, disable=not progress, file=sys.stderr)
        bar.update(k)

    def on_epoch(epoch: int, m: dict) -> None:
        nonlocal bar
        if bar is not None:
            bar.set_postfix(loss=f"{m['train_loss']:.3f}", val_f1=f"{m['val_f1']:.3f}",
                            val_acc=f"{m['val_accuracy']:.3f}")
            bar.close()
            bar = None

    t0 = time.perf_counter()
    trainer.fit(on_epoch, on_step)
    return finish_run(trainer, prep, out, time.perf_counter() - t0)
