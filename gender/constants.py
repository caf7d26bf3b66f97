"""Names and limits that more than one module reads: defined here once."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BEST_DIR", "CLASSES", "CONFIG_FILE", "DEFAULT_DATA", "DEFAULT_SYNTH", "ENVIRONMENT_FILE",
    "EXPERIMENT_FILE", "HISTORY_FILE", "IMAGE_EXTENSIONS", "JOURNAL_FILE", "MAX_IMAGE_PIXELS",
    "METRICS_FILE", "MODEL_FILE", "ONNX_FILE", "PREDICTIONS_FILE", "REPORT_DIR",
    "RETRAIN_DIR", "SPLITS", "SPLITS_FILE", "SPLIT_FRACTIONS", "TRIALS_FILE",
]

# -- data
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test share of images
CLASSES = ("female", "male")  # index = label; the model's one logit is P(male)
# Decoding refuses images with more pixels than this (a decompression bomb claims tens of
# thousands of pixels a side in a few bytes). 64 MP: above any phone or DSLR photo.
MAX_IMAGE_PIXELS = 64_000_000

# `data/synthetic`: drawn on first use so every command works out of the box. 6,000
# faces: fewer leave tuning nothing to show (a good configuration overfits early).
DEFAULT_DATA = Path("data/synthetic")
DEFAULT_SYNTH = {"n": 6000, "seed": 0, "size": 64}

# -- one training run's outputs (`gender train --out`, an experiment's `best/`)
MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
SPLITS_FILE = "splits.csv"
ENVIRONMENT_FILE = "environment.json"
PREDICTIONS_FILE = "test_predictions.csv"  # image, label, prob_male: what the report draws

# -- an experiment folder (`results/<name>/`)
EXPERIMENT_FILE = "experiment.json"
TRIALS_FILE = "trials.csv"
JOURNAL_FILE = "optuna.journal"
BEST_DIR = "best"
RETRAIN_DIR = "retrain"
REPORT_DIR = "report"
