"""Shared fixtures: synthetic datasets drawn once per session (real files, real decoder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba-gender"


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
