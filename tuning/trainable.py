"""The Ray Tune trainable: a thin adapter from the shared training loop to `tune.report`.

One function serves the search's trials and the final retrain. Data arrive as
object-store references (decoded once by the driver, read zero-copy here). Each epoch
reports metrics with a checkpoint (the trainer's whole state, its `TrainConfig` included); a
restarted trial resumes from its last checkpoint instead of epoch 1.

A retrain is a trial whose params carry `RETRAIN`: {"until": k} and the exact
`TrainConfig` to train. It trains on train+val, evaluates nothing, and stops after
epoch k of its schedule.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from gender.config import TrainConfig
from gender.data.tensors import TensorData
from gender.engine import Diverged, Trainer
from gender.metrics import measure_latency
from tuning.space import trial_config

__all__ = ["train_trial", "trial_device", "load_checkpoint", "CHECKPOINT_FILE", "REPORTED",
           "RETRAIN"]

CHECKPOINT_FILE = "trainer.pt"
RETRAIN = "retrain"  # the params key of a retrain trial
# Metrics sent to Tune every epoch (val_* on the validation split).
REPORTED = ("train_loss", "val_loss", "val_f1", "val_accuracy", "val_precision", "val_recall",
            "val_auc", "epoch_seconds", "images_per_s", "latency_ms_p50", "epoch")


def trial_device() -> torch.device:
    """The GPU Ray assigned to this trial (it sets CUDA_VISIBLE_DEVICES), else CPU.

    A trial given a (fraction of a) logical GPU on a machine without CUDA falls back to
    the CPU rather than failing, so fake GPU resources work in tests.
    """
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda", 0)  # index 0 *within* the visible devices
    return torch.device("cpu")


def _threads() -> int:
    # Use exactly the CPUs Ray reserved for this trial, so concurrent trials don't fight.
    res = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(res.get("CPU", 1)))


def load_checkpoint(checkpoint_dir: str | Path) -> dict:
    """The trainer state a checkpoint holds (tensors and plain types only), its
    `TrainConfig` as a dict under "config"."""
    return torch.load(Path(checkpoint_dir) / CHECKPOINT_FILE, map_location="cpu",
                      weights_only=True)


def train_trial(params: dict, data: dict) -> None:
    """`data`: {"images": {(size, crop): ObjectRef}, "labels": ndarray,
    "splits": {name: ndarray}}."""
    retrain = params.get(RETRAIN)
    cfg = TrainConfig.from_saved(retrain["config"]) if retrain else trial_config(params)
    torch.set_num_threads(_threads())
    images = ray.get(data["images"][cfg.input_view])  # zero-copy view of the object store
    tensors = TensorData.from_arrays(images, data["labels"], data["splits"], cfg.crop)
    trainer = Trainer(cfg, tensors, trial_device(),
                      train_split=("train", "val") if retrain else "train",
                      eval_split=None if retrain else "val")

    ckpt = tune.get_checkpoint()
    if ckpt is not None:  # restarted after a failure, or resumed: continue, don't restart
        with ckpt.as_directory() as d:
            trainer.load_state_dict(load_checkpoint(d))
    resumed_at = trainer.epoch
    node = ray.get_runtime_context().get_node_id()

    def report(epoch: int, m: dict) -> None:
        metrics = {k: m[k] for k in REPORTED if k in m}
        if not retrain:
            # The best F1 so far: what Optuna learns from when the trial ends (its last
            # result), so a trial that peaked early is not judged by a worse final epoch.
            metrics["best_val_f1"] = max(h["val_f1"] for h in trainer.history if "val_f1" in h)
        metrics.update(diverged=0, node_id=node, device=str(trainer.device),
                       resumed_at_epoch=resumed_at)
        with tempfile.TemporaryDirectory() as d:
            torch.save(trainer.state_dict(), Path(d) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    try:
        trainer.fit(report, until=retrain["until"] if retrain else None)
    except Diverged as e:
        # A NaN/inf loss ends the trial as diverged: reported with F1 0 so neither ASHA
        # nor the best-trial choice can pick it, and flagged for trials.csv.
        lat = measure_latency(trainer.model, cfg.image_size, trainer.runtime, iters=3)
        tune.report({"val_f1": 0.0, "best_val_f1": 0.0, "val_accuracy": 0.0, "diverged": 1,
                     "diverged_reason": str(e), "epoch": trainer.epoch + 1, "node_id": node,
                     "latency_ms_p50": lat["latency_ms_p50"]})
