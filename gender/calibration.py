"""Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"):
one number T that rescales the logit of P(male) so the shown probabilities match how often
they are right. It changes no label (the logit's sign is kept), only the confidence.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

__all__ = ["fit_temperature", "apply_temperature", "logit"]


def logit(p) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(q) - np.log1p(-q)


def apply_temperature(p, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / T): what `Deployable` computes when T != 1."""
    if temperature == 1.0:
        return np.asarray(p, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-logit(p) / temperature))


def fit_temperature(y_true, prob_male, bounds=(0.05, 20.0)) -> float:
    """The T in `bounds` minimising the negative log-likelihood of `y_true`."""
    y = np.asarray(y_true, dtype=np.float64)
    z = logit(prob_male)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        # log(1 + e^-s) for y = 1 and log(1 + e^s) for y = 0, computed stably.
        return float(np.mean(np.logaddexp(0.0, -s) * y + np.logaddexp(0.0, s) * (1 - y)))

    res = minimize_scalar(nll, bounds=(np.log(bounds[0]), np.log(bounds[1])), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))
