"""Names and limits that more than one module reads: defined here once."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BEST_DIR", "CLASSES", "CONFIG_FILE", "DEFAULT_CPU_ENGINE", "DEFAULT_DATA", "DEFAULT_SYNTH",
    "ENGINES", "ENVIRONMENT_FILE", "EXPERIMENT_FILE", "HISTORY_FILE", "IMAGE_EXTENSIONS",
    "JOURNAL_FILE", "MAX_IMAGE_PIXELS", "MAX_UPLOAD_BYTES", "METRICS_FILE", "MODEL_FILE",
    "ONNX_FILE", "PREDICTIONS_FILE", "REPORT_DIR", "RETRAIN_DIR", "SPLITS", "SPLITS_FILE",
    "SPLIT_FRACTIONS", "TRIALS_FILE",
]

# -- data
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test share of images
CLASSES = ("female", "male")  # index = label; the model's one logit is P(male)
# Decoding refuses images with more pixels than this (a decompression bomb claims tens of
# thousands of pixels a side in a few bytes). 64 MP: above any phone or DSLR photo.
MAX_IMAGE_PIXELS = 64_000_000
# The web app's limit on one request body (one photo, or several as multipart): refused
# with 413 from its Content-Length, or as soon as the stream passes it.
MAX_UPLOAD_BYTES = 10 * 1024 * 1024

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

# -- inference: "auto" = DEFAULT_CPU_ENGINE on the CPU, PyTorch on a GPU. The default is
# the engine the inference benchmark measured faster on CPU (README, Benchmarks).
ENGINES = ("auto", "torch", "onnx")
DEFAULT_CPU_ENGINE = "onnx"

# -- an experiment folder (`results/<name>/`)
EXPERIMENT_FILE = "experiment.json"
TRIALS_FILE = "trials.csv"
JOURNAL_FILE = "optuna.journal"
BEST_DIR = "best"
RETRAIN_DIR = "retrain"
REPORT_DIR = "report"
