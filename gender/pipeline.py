"""From a data folder to a measured model: the steps `gender train` and the tuner's
retrain share (load + split + decode once; test once + write the outputs)."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gender.config import TrainConfig
from gender.constants import (
    CONFIG_FILE,
    ENVIRONMENT_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PREDICTIONS_FILE,
    SPLITS,
    SPLITS_FILE,
)
from gender.data.layouts import DatasetIndex, read_dataset
from gender.data.splits import make_splits, read_splits, write_splits
from gender.data.tensors import TensorData, load_arrays
from gender.engine import Trainer
from gender.export import Deployable, LoadedModel, export_onnx, load_model, save_model
from gender.io import atomic_path, check_writable_dir, write_json
from gender.metrics import binary_metrics, interval_metrics, measure_latency, measure_throughput
from gender.predict import Predictor

__all__ = ["Prepared", "prepare", "finish_run", "environment", "train_command",
           "write_predictions"]


@dataclass
class Prepared:
    index: DatasetIndex
    splits: pd.DataFrame  # image, label, identity, split (after any undersampling)
    data: TensorData


def prepare(data_dir: str | Path, image_size: int, split_seed: int = 0,
            splits_csv: str | Path | None = None, crop: float = 1.0) -> Prepared:
    """Read, split (or reuse a saved split) and decode a dataset once.

    The split depends on the dataset and `split_seed` only, never on a training seed, so
    runs with different seeds are tested on the same faces.
    """
    index = read_dataset(data_dir)
    df = read_splits(splits_csv, index) if splits_csv else make_splits(index, seed=split_seed)
    arrays = load_arrays(index, image_size, crop=crop)
    pos = {s.name: i for i, s in enumerate(index.samples)}
    rows = np.array([pos[n] for n in df["image"]], dtype=np.int64)
    splits = {name: rows[(df["split"] == name).to_numpy()] for name in SPLITS}
    labels = np.array([s.label for s in index.samples], dtype=np.float32)
    return Prepared(index, df, TensorData.from_arrays(arrays, labels, splits, crop))


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def environment() -> dict:
    """What produced a result: versions (read from package metadata, nothing imported),
    the machine and the command line."""
    return {"python": platform.python_version(),
            **{p: _version(p) for p in ("gender-tune", "torch", "torchvision", "ray",
                                        "optuna", "onnxruntime")},
            "platform": platform.platform(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "command": " ".join(sys.argv)}


def write_predictions(prep: Prepared, split: str, probs: np.ndarray, path: Path) -> Path:
    """image, label, prob_male per image of `split`: computed once, read by the report."""
    idx = prep.data.splits[split]
    names = [prep.index.samples[i].name for i in idx]
    df = pd.DataFrame({"image": names, "label": prep.data.labels[idx].numpy().astype(int),
                       "prob_male": np.round(probs.astype(np.float64), 7)})
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def finish_run(trainers: Trainer | list[Trainer], prep: Prepared, out: Path,
               train_seconds: float, extra: dict | None = None, *, tta_flip: bool = False,
               temperature: float = 1.0, config: dict | None = None) -> dict:
    """Test once on the held-out split, time inference, write every output file.

    `trainers`: one trained model, or an ensemble's members; with `tta_flip` and
    `temperature` they form the exported `Deployable`, and the test figures are that
    module's, computed through the same `Predictor` as `gender predict`.
    `config`: what config.json says (default: the single model's TrainConfig).
    """
    trainers = trainers if isinstance(trainers, list) else [trainers]
    out.mkdir(parents=True, exist_ok=True)
    configs = [t.cfg for t in trainers]
    members = [t.eval_model.to("cpu").eval() for t in trainers]
    loaded = LoadedModel(out / MODEL_FILE, Deployable(members, tta_flip, temperature).eval(),
                         configs)
    idx = prep.data.splits["test"]
    y = prep.data.labels[idx].numpy()
    # Eager PyTorch: model.onnx does not exist yet, and is checked against these below.
    probs = Predictor(loaded, str(trainers[0].device), "torch").predict_arrays(
        prep.data.images[idx].numpy())
    cpu = Predictor(loaded, "cpu", "torch")  # timings on this machine's CPU
    size = configs[0].image_size
    metrics = {
        **binary_metrics(y, probs), **interval_metrics(y, probs), "n_test": int(len(idx)),
        **measure_latency(cpu.module, size, "cpu", iters=30, uint8_input=True),
        "images_per_s_batch64": measure_throughput(cpu.module, size, "cpu", 64,
                                                   uint8_input=True),
        "train_seconds": train_seconds, "epochs": trainers[0].epoch,
        "members": len(members), "tta_flip": bool(tta_flip), "temperature": float(temperature),
        "data": str(prep.index.root), "data_fingerprint": prep.index.fingerprint(),
        "test_predictions": PREDICTIONS_FILE,
        **(extra or {}),
    }
    write_predictions(prep, "test", probs, out / PREDICTIONS_FILE)
    save_model(out / MODEL_FILE, members, configs, metrics, tta_flip=tta_flip,
               temperature=temperature)
    # model.onnx for ONNX Runtime (here and elsewhere): the file must load the safe way and
    # agree with PyTorch on test images before it is written.
    export_onnx(load_model(out / MODEL_FILE), check=prep.data.images[idx[:32]])
    write_json(config if config is not None else configs[0].to_dict(), out / CONFIG_FILE)
    write_json(metrics, out / METRICS_FILE)
    write_json(environment(), out / ENVIRONMENT_FILE)
    history = [{"member": i, **h} for i, t in enumerate(trainers) for h in t.history]
    with atomic_path(out / HISTORY_FILE) as tmp:
        pd.DataFrame(history).drop(columns=["member"] if len(trainers) == 1 else []).to_csv(
            tmp, index=False)
    write_splits(prep.splits, out / SPLITS_FILE)
    return metrics


def train_command(cfg: TrainConfig, data_dir: Path, out: Path, device: torch.device,
                  progress: bool = True, split_seed: int = 0) -> dict:
    """`gender train`: one run without Ray."""
    from tqdm import tqdm

    check_writable_dir(out, "--out")
    prep = prepare(data_dir, cfg.image_size, split_seed=split_seed, crop=cfg.crop)
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
    return finish_run(trainer, prep, out, time.perf_counter() - t0,
                      extra={"split_seed": split_seed})
