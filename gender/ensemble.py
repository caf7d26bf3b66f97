"""What to export, measured on the validation split: the single best model or the top-k,
with or without the mirrored picture, with or without a temperature.

Each candidate member is given as a model trained on the training split only (a trial's
best checkpoint), so its validation predictions are honest enough to compare recipes on.
Probabilities are combined as `Deployable` combines them (the mean over members and
views, then the temperature on its logit), so what is compared is what gets exported.
The temperature's effect is measured out of fold: fitted on one half of the validation
split, scored on the other, and the other way round.
"""

from __future__ import annotations

import numpy as np
import torch

from gender.calibration import apply_temperature, fit_temperature
from gender.export import Deployable
from gender.metrics import binary_metrics, calibration

__all__ = ["view_probs", "combine", "compare_recipes", "recipe_temperature"]


@torch.inference_mode()
def view_probs(model: torch.nn.Module, images_u8: np.ndarray, batch_size: int = 256
               ) -> np.ndarray:
    """2 x N: P(male) of each picture as it is and mirrored, from one member on the CPU."""
    single = Deployable([model]).eval()
    out = []
    for flip in (False, True):
        parts = []
        for start in range(0, len(images_u8), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images_u8[start:start + batch_size]))
            parts.append(single(torch.flip(x, dims=[3]) if flip else x).numpy())
        out.append(np.concatenate(parts) if parts else np.zeros(0))
    return np.stack(out).astype(np.float64)


def combine(views: list[np.ndarray], k: int, tta: bool) -> np.ndarray:
    """The mean P(male) of the first `k` members (each 2 x N from `view_probs`)."""
    chosen = [v if tta else v[:1] for v in views[:k]]
    return np.concatenate(chosen).mean(axis=0)


def _halves(y: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Two halves of the rows, each class split evenly."""
    rng = np.random.default_rng(seed)
    a = np.zeros(len(y), dtype=bool)
    for c in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == c))
        a[rows[: len(rows) // 2]] = True
    return [a, ~a]


def _scores(y: np.ndarray, p: np.ndarray) -> dict:
    m, c = binary_metrics(y, p), calibration(y, p)
    return {"accuracy": m["accuracy"], "f1": m["f1"], "recall_female": m["recall_female"],
            "recall_male": m["recall_male"], "ece": c["ece"], "nll": c["nll"]}


def compare_recipes(views: list[np.ndarray], y, max_members: int) -> list[dict]:
    """One row per recipe (members 1..max, flip off/on, temperature off/on) with its
    validation accuracy, F1, per-class recall, ECE and NLL."""
    y = np.asarray(y).astype(int)
    rows = []
    for k in range(1, min(max_members, len(views)) + 1):
        for tta in (False, True):
            p = combine(views, k, tta)
            rows.append({"members": k, "tta_flip": tta, "temperature": "off", **_scores(y, p)})
            out_of_fold = np.empty_like(p)
            for fit, score in (_halves(y), _halves(y)[::-1]):
                t = fit_temperature(y[fit], p[fit])
                out_of_fold[score] = apply_temperature(p[score], t)
            rows.append({"members": k, "tta_flip": tta, "temperature": "out of fold",
                         **_scores(y, out_of_fold)})
    return rows


def recipe_temperature(views: list[np.ndarray], y, k: int, tta: bool) -> float:
    """The temperature to export with a recipe: fitted on the whole validation split."""
    return fit_temperature(np.asarray(y).astype(int), combine(views, k, tta))
