"""The metrics every epoch reports, checked against scikit-learn's reference
implementations on cases with ties, a class never predicted and perfect separation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from gender.metrics import binary_metrics


def _cases():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    noisy = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    yield "continuous", y, noisy
    yield "many-ties", y, np.round(noisy, 1)
    yield "never-male", y, noisy * 0.4  # every face predicted female
    yield "perfect", y, y * 0.9 + 0.05
    yield "inverted", y, 1.0 - noisy
    yield "tiny", np.array([0, 1, 1]), np.array([0.5, 0.5, 0.2])


@pytest.mark.parametrize("name,y,p", list(_cases()), ids=lambda v: v if isinstance(v, str) else "")
def test_binary_metrics_equal_scikit_learns(name, y, p):
    m = binary_metrics(y, p)
    pred = (p >= 0.5).astype(int)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=[0, 1], average=None,
                                                       zero_division=0)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["precision"] == pytest.approx(prec.mean(), abs=1e-12)
    assert m["recall"] == pytest.approx(rec.mean(), abs=1e-12)
    assert m["f1"] == pytest.approx(f1.mean(), abs=1e-12)
    assert [m["recall_female"], m["recall_male"]] == pytest.approx(list(rec), abs=1e-12)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["confusion"] == confusion_matrix(y, pred, labels=[0, 1]).tolist()


def test_auc_is_undefined_with_one_class():
    assert np.isnan(binary_metrics(np.ones(5), np.linspace(0, 1, 5))["auc"])
