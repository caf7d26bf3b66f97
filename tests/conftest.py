"""Shared fixtures: synthetic datasets drawn once per session (real files, real decoder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Beside the repository (CI: a copy of shared/ next to the clone); $GENDER_CELEBA elsewhere.
CELEBA = Path(os.environ.get("GENDER_CELEBA", REPO.parent / "shared" / "data" / "celeba-gender"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    # Decoded-tensor caches of the tests never touch the user's ~/.cache.
    os.environ["GENDER_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """2,000 synthetic faces at 32 px, CelebA layout with identities and partition."""
    from gender.data.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "faces"
    synthesize(out, n=2000, seed=7, size=32)
    return out


@pytest.fixture(scope="session")
def celeba() -> Path:
    if not (CELEBA / "labels.csv").is_file():
        pytest.skip("../shared/data/celeba-gender is absent")
    return CELEBA


@pytest.fixture(scope="session")
def tiny_model(synth_data, tmp_path_factory) -> Path:
    """One trained tiny model's run folder (model.pt, model.onnx, metrics.json, ...): 32 px,
    width 0.125, one epoch, through `gender train`'s own path."""
    import torch

    from gender.config import TrainConfig
    from gender.pipeline import train_command

    out = tmp_path_factory.mktemp("tiny") / "best"
    cfg = TrainConfig(arch="vgg11", width=0.125, image_size=32, epochs=1, batch_size=32,
                      lr=3e-3, seed=0)
    train_command(cfg, synth_data, out, torch.device("cpu"), progress=False)
    return out
