"""How `gender serve` runs (flags, or `serve.yaml`'s args), checked before anything starts.

No Ray and no torch here: a bad flag is refused at once.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from gender.errors import UserError

__all__ = ["ServeOptions", "is_loopback", "check_bind"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeOptions:
    """How the deployment runs; checked here, so a flag and a `serve.yaml` arg fail alike."""

    model: str
    replicas: int | str = 1  # N, or "auto": Serve's autoscaling between 1 and max_replicas
    max_replicas: int | None = None  # with "auto" (default: what fits the cluster at start)
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_batch_size: int = 16
    batch_wait_ms: float = 2.0
    engine: str = "auto"
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.replicas != "auto":
            if not isinstance(self.replicas, int) or self.replicas < 1:
                raise UserError(f"--replicas {self.replicas}: must be a whole number >= 1 "
                                "or auto")
        if self.max_replicas is not None and self.max_replicas < 1:
            raise UserError(f"--max-replicas {self.max_replicas}: must be >= 1")
        if not self.cpus_per_replica > 0:
            raise UserError(f"--cpus-per-replica {self.cpus_per_replica}: must be > 0")
        g = self.gpus_per_replica
        if g < 0 or (g > 1 and g != int(g)) or (0 < g < 1 and abs(1 / g - round(1 / g)) > 1e-6):
            raise UserError(f"--gpus-per-replica {g:g}: must be 0, a whole number, or a "
                            "fraction that divides 1 (0.5, 0.25, ...: that many replicas per "
                            "GPU)")
        if not 1 <= self.max_batch_size <= 256:
            raise UserError(f"--max-batch-size {self.max_batch_size}: must be in 1..256")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise UserError(f"--batch-wait-ms {self.batch_wait_ms}: must be in 0..1000")

    @property
    def max_ongoing_requests(self) -> int:
        # Room for a full batch in the forward pass and the next one filling up.
        return max(4, 2 * self.max_batch_size)

    def deployment_options(self, max_replicas: int) -> dict:
        """Serve's options for the deployment (as `serve.yaml`'s deployments entry)."""
        opts = {"max_ongoing_requests": self.max_ongoing_requests,
                "ray_actor_options": {"num_cpus": self.cpus_per_replica,
                                      "num_gpus": self.gpus_per_replica}}
        if self.replicas == "auto":
            # A replica counts as busy with a whole batch in flight: more than that queued
            # per replica, Serve adds one (up to the cap); far less, it removes one.
            opts["autoscaling_config"] = {
                "min_replicas": 1, "initial_replicas": 1,
                "max_replicas": self.max_replicas or max_replicas,
                "target_ongoing_requests": self.max_batch_size,
                "upscale_delay_s": 5, "downscale_delay_s": 60}
        else:
            opts["num_replicas"] = self.replicas
        return opts


def check_bind(host: str, port: int) -> None:
    """Fail now, naming the flag, if this machine cannot listen there."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # As Serve's proxy binds: a previous server's connections in TIME_WAIT are no
            # reason to refuse. With SO_REUSEADDR, bind() may succeed beside a listening
            # socket; listen() is what fails then.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen()
    except OSError as e:
        raise UserError(f"--port {port}: cannot listen on {host}:{port} "
                        f"({e.strerror or e})") from None
