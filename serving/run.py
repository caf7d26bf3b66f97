"""Start the app on Ray Serve, wait until it answers, take it down: for `gender serve` and
the serve benchmark.

Ray is reached through `tuning.cluster.start_ray` (a local Ray of our own on loopback with
token auth, or `--address`). Serve's HTTP proxy runs on the head node only and binds the
host and port asked for (127.0.0.1 unless told otherwise). Every wait has a deadline and
says what it was waiting for.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from gender.errors import UserError
from serving.app import APP_NAME, build_app, read_model_files
from serving.options import ServeOptions, check_bind, is_loopback

__all__ = ["Served", "NotReady", "start", "stop", "fits"]

READY_TIMEOUT_S = 300.0


class NotReady(RuntimeError):
    """The application did not come up (deploy failed, or the deadline passed)."""


@dataclass
class Served:
    url: str
    local_ray: bool  # we started Ray: stopping ends it
    started_serve: bool  # Serve was not running before: stopping shuts it down
    replicas: str  # e.g. "1 replica", "auto, 1 to 2 replicas"
    name: str = APP_NAME


def fits(options: ServeOptions) -> int:
    """Replicas of this size the cluster holds now (at least 1)."""
    import ray

    total = ray.cluster_resources()
    n = int(total.get("CPU", 0) // options.cpus_per_replica)
    if options.gpus_per_replica:
        n = min(n, int(total.get("GPU", 0) // options.gpus_per_replica))
    return max(1, n)


def _app_status(name: str) -> tuple[str, str]:
    from ray import serve

    app = serve.status().applications.get(name)
    if app is None:
        return "NOT_STARTED", ""
    messages = [app.message] + [d.message for d in app.deployments.values()]
    return str(app.status), "; ".join(m for m in messages if m)


def _proxy_failed() -> bool:
    from ray import serve

    return any("UNHEALTHY" in str(p) for p in serve.status().proxies.values())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "healthz", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_ready(url: str, name: str = APP_NAME, timeout: float = READY_TIMEOUT_S) -> None:
    """Until the application is RUNNING and its page answers, or NotReady with why."""
    deadline = time.monotonic() + timeout
    status, message = "NOT_STARTED", ""
    while time.monotonic() < deadline:
        status, message = _app_status(name)
        if _proxy_failed():
            raise NotReady(f"Serve's HTTP proxy could not start on {url} (is the port in use "
                           "on the head node?)")
        if "DEPLOY_FAILED" in status or "UNHEALTHY" in status:
            detail = (message.strip().splitlines() or [status])[-1]
            raise NotReady(f"the application failed to start: {detail[:300]}")
        if "RUNNING" in status and _answers(url):
            return
        time.sleep(0.5)
    raise NotReady(f"not ready after {timeout:.0f} s (Serve says {status}"
                   f"{': ' + message[:300] if message else ''}); on a cluster, check that "
                   "its nodes offer the CPUs and GPUs a replica asks for")


def start(options: ServeOptions, host: str = "127.0.0.1", port: int = 8000,
          address: str | None = None, timeout: float = READY_TIMEOUT_S) -> Served:
    """Deploy the app (Ray started or joined first) and return once it answers."""
    import ray
    from ray import serve

    from tuning.cluster import start_ray

    if not is_loopback(host) and not options.token:
        raise UserError(f"--host {host}: listening beyond this machine needs a token "
                        "(--token or $GENDER_SERVE_TOKEN); every API call must then send "
                        "'Authorization: Bearer <token>'")
    if address is None:
        check_bind(host, port)
    model_files = read_model_files(options.model)  # a bad model fails before Ray starts
    # Serve's own INFO lines (deploying, scaling) would bury the one line users need.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    local = address is None and not ray.is_initialized()  # a Ray of our own: ours to end
    start_ray(address, quiet=True)
    if address is None and options.gpus_per_replica and not ray.cluster_resources().get("GPU"):
        if local:
            ray.shutdown()
        raise UserError(f"--gpus-per-replica {options.gpus_per_replica:g}: Ray found no GPU "
                        "on this machine (use --address for a cluster with GPU workers)")
    started_serve = False
    try:
        started_serve = not _serve_running()
        serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
        app = build_app(options, max_replicas=fits(options), model_files=model_files)
        serve.run_many([serve.RunTarget(target=app, name=APP_NAME, route_prefix="/")],
                       wait_for_ingress_deployment_creation=False,
                       wait_for_applications_running=False)
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"
        wait_ready(url, APP_NAME, timeout)
    except BaseException:
        _teardown(APP_NAME, local, started_serve)
        raise
    replicas = (f"auto, 1 to {options.max_replicas or fits(options)} replicas"
                if options.replicas == "auto" else
                f"{options.replicas} replica{'s' if options.replicas != 1 else ''}")
    return Served(url, local, started_serve, replicas)


def _serve_running() -> bool:
    """Serve already runs on this cluster (someone else's applications or proxies)."""
    from ray import serve

    status = serve.status()  # empty without a Serve controller; starts nothing
    return bool(status.proxies or status.applications)


def _teardown(name: str, local_ray: bool, started_serve: bool) -> None:
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    try:
        if started_serve:
            serve.shutdown()  # the app, its replicas and the proxy (the port is free again)
        else:
            serve.delete(name)  # someone else's Serve: take only our application away
    finally:
        if local_ray:
            ray.shutdown()


def stop(served: Served) -> None:
    _teardown(served.name, served.local_ray, served.started_serve)
