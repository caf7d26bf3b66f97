"""How this project reaches Ray: one policy for `gender tune`, `gender retrain`,
`gender serve` and the benchmarks.

- With `--address` (or `$RAY_ADDRESS`, which `ray job submit` sets for its entrypoint):
  join that cluster. Ray itself retries a dead address for many minutes, so the address is
  tried first, within `CONNECT_TIMEOUT_S`: nothing listening, no answer, or something that
  is not Ray is one line naming the address.
- Without: start a Ray of our own, never one already running on the machine (Ray would
  otherwise join the cluster its "current cluster" file names, which may have died),
  with token authentication and every process listening on 127.0.0.1 only.

`node_shapes` and `node_types_to_add` describe the cluster for the resource check
(`tuning.resources.check_fits`): the nodes alive now, and those an autoscaler may add.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import ray

from gender.errors import UserError
from tuning.resources import TrialResources, check_fits, default_resources

__all__ = ["start_ray", "reach_ray", "check_trials_fit", "CONNECT_TIMEOUT_S", "node_shapes",
           "node_types_to_add", "node_types_in", "BOOTSTRAP_CONFIG"]

CONNECT_TIMEOUT_S = 10.0  # $GENDER_RAY_CONNECT_TIMEOUT overrides it
# Where `ray up` leaves the cluster's yaml on the head (Ray Tune reads it there too).
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")


def start_ray(address: str | None, quiet: bool = False) -> None:
    """Connect to a cluster, or start a local Ray: token authentication on, every local
    process bound to 127.0.0.1 and the dashboard (when on) too."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "1")
    # We checkpoint every epoch on purpose (resume must lose at most one); Tune's warning
    # about frequent experiment snapshots would repeat every few seconds.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Token authentication: the `gender` CLI sets RAY_AUTH_MODE=token before Ray is
    # imported (Ray reads it once); a library caller gets Ray's own default, which is token
    # auth for a new local cluster. The token lives in ~/.ray/auth_token or $RAY_AUTH_TOKEN.
    env_address = os.environ.get("RAY_ADDRESS") or None
    target = address or env_address
    if target and target != "local":
        where = f"--address {address}" if address else f"RAY_ADDRESS={env_address}"
        _check_reachable(target, where, _connect_timeout())
        ray.init(address=target, log_to_driver=not quiet)
        return
    dashboard = os.environ.get("GENDER_RAY_DASHBOARD") == "1"
    # address="local": always a new Ray of our own, never one already on this machine.
    with _loopback_only():
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=dashboard,
                 dashboard_host="127.0.0.1", log_to_driver=not quiet,
                 configure_logging=not quiet)


def _connect_timeout() -> float:
    text = os.environ.get("GENDER_RAY_CONNECT_TIMEOUT")
    try:
        value = CONNECT_TIMEOUT_S if text is None else float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise UserError(f"GENDER_RAY_CONNECT_TIMEOUT={text}: must be a number of seconds > 0")
    return value


@contextlib.contextmanager
def _loopback_only():
    """Keep 127.0.0.1 as the node's address while a local Ray starts.

    Ray replaces a loopback node address by the machine's outward one (so that other
    nodes could join), and its servers then listen on every interface. Where Ray allows
    no cluster (its "Windows or macOS" switch, off) it keeps loopback, and every server
    (GCS, raylet, object manager, agents, workers) binds 127.0.0.1: that switch is what
    this sets, for the processes Ray starts (environment) and for this one (constant).
    """
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


# ------------------------------------------------------------------ joining a cluster

def _host_port(text: str, where: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise UserError(f"{where}: not a Ray address (use auto, HOST:PORT or ray://HOST:PORT)")
    return host, int(port)


def _resolve(address: str, where: str) -> tuple[str, int, str]:
    """-> (host, port Ray will dial, a note on where the address came from)."""
    if address.startswith("ray://"):
        return (*_host_port(address.removeprefix("ray://").split("/")[0], where), "")
    if "://" in address:
        raise UserError(f"{where}: not a Ray address (use auto, HOST:PORT or ray://HOST:PORT)")
    from ray._private import services, utils

    note = ""
    if address == "auto":
        recorded = utils.read_ray_address()
        if recorded:
            note = (f"; it is the cluster Ray recorded at the last `ray start` on this "
                    f"machine ({recorded}), which has stopped since (`ray stop` clears it)")
    else:
        _host_port(address, where)  # refuse a malformed address in our words, not Ray's
    try:
        target = services.canonicalize_bootstrap_address_or_die(address)
    except ConnectionError:
        raise UserError(f"{where}: no Ray cluster is running on this machine (start one "
                        "with `ray start --head`, or leave out --address for a Ray of "
                        "this command's own)") from None
    host, port = _host_port(target, where)
    given = address.rpartition(":")[0].strip("[]")
    if address != "auto" and host != given:
        note = f"; Ray dials {given} as {host}"
    return host, port, note


def _check_reachable(address: str, where: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connection, then a gRPC handshake, each within `timeout`: the two things Ray
    would otherwise retry for many minutes before giving up."""
    import grpc

    host, port, note = _resolve(address, where)
    at = f"{host}:{port}"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except ConnectionRefusedError:
        raise UserError(f"{where}: nothing listens at {at} (connection refused){note}") from None
    except TimeoutError:
        raise UserError(f"{where}: no answer from {at} within {timeout:g} s (no such "
                        f"machine, or a firewall){note}") from None
    except OSError as e:
        raise UserError(f"{where}: cannot reach {at} ({e.strerror or e}){note}") from None
    channel = grpc.insecure_channel(at)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise UserError(f"{where}: {at} accepted a connection but did not answer as Ray "
                        f"within {timeout:g} s (not a Ray head's GCS port, 6379 by "
                        "default?)") from None
    finally:
        channel.close()


# ------------------------------------------------------------------ what the cluster holds

def node_shapes() -> list[dict]:
    """The resources of every node alive now (CPU, GPU, ...), one dict a node."""
    return [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]


def node_types_in(config: dict) -> list[dict] | None:
    """Resources of the worker types a cluster launcher yaml lets the autoscaler add.
    None where a type does not state its resources (Ray then reads them from the
    instance type, which we cannot see): anything might fit."""
    types = []
    for spec in (config.get("available_node_types") or {}).values():
        if not isinstance(spec, dict) or not spec.get("max_workers", 0):
            continue  # the head type, or a type the autoscaler may not add
        if not isinstance(spec.get("resources"), dict):
            return None
        types.append({k: float(v) for k, v in spec["resources"].items()})
    return types


def node_types_to_add() -> list[dict] | None:
    """Node types an autoscaler may add to the cluster joined: [] when there is none,
    None when there is one whose node types we cannot read."""
    import yaml

    types: list[dict] = []
    # A cluster started by `ray up`: the autoscaler's yaml, on the head beside the driver.
    path = BOOTSTRAP_CONFIG.expanduser()
    if path.is_file():
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        found = node_types_in(config if isinstance(config, dict) else {})
        if found is None:
            return None
        types += found
    # A cluster whose autoscaler reports its node groups to Ray (KubeRay, autoscaler v2).
    with contextlib.suppress(Exception):  # private API: absent in some Ray versions
        from ray._private.state import state

        config = state.get_cluster_config()
        for group in (config.node_group_configs if config is not None else []):
            if group.max_count != 0:
                types.append({k: float(v) for k, v in group.resources.items()})
    return types


def _starts_own_ray(address: str | None) -> bool:
    target = address or os.environ.get("RAY_ADDRESS") or None
    return not ray.is_initialized() and target in (None, "local")


def _this_machine(count_gpus: bool) -> dict:
    """The most a Ray started here can hold: Ray counts no more CPUs than the machine has,
    nor GPUs that CUDA does not see (torch, to count them, only when GPUs are asked for)."""
    gpus = 0.0
    if count_gpus:
        import torch

        gpus = float(torch.cuda.device_count())
    return {"CPU": float(os.cpu_count() or 1), "GPU": gpus}


def _refuse_unfit(total: dict, nodes: list[dict], to_add: list[dict] | None,
                  cpus: float | None, gpus: float | None) -> TrialResources:
    """The request with its defaults filled in from `total`, refused if no node holds it;
    only the flags the user gave (not None) are named when they are short."""
    res = default_resources(total, cpus, gpus)
    given = tuple(k for k, v in (("CPU", cpus), ("GPU", gpus)) if v is not None)
    check_fits(res, nodes, to_add, given)
    return res


def reach_ray(address: str | None, cpus: float | None, gpus: float | None,
              quiet: bool = False) -> TrialResources:
    """`start_ray`, then `check_trials_fit`. A run that starts its own Ray is first checked
    against this machine, so a request it can never hold is refused at once, not after
    Ray has started."""
    if _starts_own_ray(address):
        here = _this_machine(count_gpus=bool(gpus))
        _refuse_unfit(here, [here], [], cpus, gpus)
    start_ray(address, quiet=quiet)
    return check_trials_fit(cpus, gpus)


def check_trials_fit(cpus: float | None, gpus: float | None) -> TrialResources:
    """The per-trial request (defaults filled in from the cluster), refused if no node alive
    now, nor any node the autoscaler may add, can hold it."""
    return _refuse_unfit(ray.cluster_resources(), node_shapes(), node_types_to_add(), cpus,
                         gpus)
