"""How this project reaches Ray: one policy for `gender tune`, `gender retrain`,
`gender serve` and the benchmarks.

With `--address`, join that cluster. Without it, start a Ray of our own on loopback with
token authentication: never one already running on the machine.
"""

from __future__ import annotations

import os

import ray

__all__ = ["start_ray"]


def start_ray(address: str | None, quiet: bool = False) -> None:
    """Connect to a cluster, or start a local Ray: token authentication on, the node
    advertised on 127.0.0.1 and the dashboard (when on) bound to 127.0.0.1."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    # We checkpoint every epoch on purpose (resume must lose at most one); Tune's warning
    # about frequent experiment snapshots would repeat every few seconds.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Token authentication: the `gender` CLI sets RAY_AUTH_MODE=token before Ray is
    # imported (Ray reads it once); a library caller gets Ray's own default, which is token
    # auth for a new local cluster. The token lives in ~/.ray/auth_token or $RAY_AUTH_TOKEN.
    if address:
        ray.init(address=address, log_to_driver=not quiet)
    else:
        dashboard = os.environ.get("GENDER_RAY_DASHBOARD") == "1"
        # address="local": always a new Ray of our own, never one already on this machine
        # (Ray would otherwise join whatever its "current cluster" file names).
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", log_to_driver=not quiet,
                 configure_logging=not quiet)
