"""The F1 / latency Pareto front: the trials no other trial beats on both at once."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_front"]


def pareto_front(points) -> np.ndarray:
    """`points`: N x 2 of (F1, latency) -> boolean mask of the non-dominated points.

    F1 is maximised and latency minimised. A point is dominated when another point is at
    least as good on both and strictly better on one, so exact duplicates keep each other
    on the front. Rows holding NaN are never on it (and never dominate). O(N^2), exact.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(p).all(axis=1)
    f1, lat = p[:, 0][:, None], p[:, 1][:, None]  # row i: the candidate; column j: a rival
    at_least_as_good = (f1.T >= f1) & (lat.T <= lat)
    strictly_better = (f1.T > f1) | (lat.T < lat)
    dominated = (at_least_as_good & strictly_better & ok[None, :]).any(axis=1)
    return ok & ~dominated
