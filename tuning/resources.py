"""What one trial gets: CPUs and (fractional) GPUs, defaulting from the cluster."""

from __future__ import annotations

from dataclasses import dataclass

from gender.errors import ConfigError

__all__ = ["TrialResources", "default_resources"]


@dataclass(frozen=True)
class TrialResources:
    cpus: float
    gpus: float

    def __post_init__(self) -> None:
        if not self.cpus > 0:
            raise ConfigError(f"--cpus-per-trial must be > 0, got {self.cpus}")
        if self.gpus < 0:
            raise ConfigError(f"--gpus-per-trial must be >= 0, got {self.gpus}")
        if 0 < self.gpus < 1 and round(1 / self.gpus, 6) % 1:
            # Ray packs fractions; 0.3 would strand 0.1 of every GPU.
            raise ConfigError(f"--gpus-per-trial: a fraction must divide 1 (0.5, 0.25, ...), "
                              f"got {self.gpus}")
        if self.gpus > 1 and self.gpus % 1:
            raise ConfigError(f"--gpus-per-trial above 1 must be whole, got {self.gpus}")

    def as_dict(self) -> dict:
        return {"cpu": self.cpus, "gpu": self.gpus}

    def slots(self, cluster: dict) -> int:
        """How many trials fit at once on `cluster` (ray.cluster_resources())."""
        n = int(cluster.get("CPU", 1) // self.cpus)
        if self.gpus:
            n = min(n, int(round(cluster.get("GPU", 0) / self.gpus, 6)))
        return max(1, n)


def default_resources(cluster: dict, cpus: float | None = None,
                      gpus: float | None = None) -> TrialResources:
    """GPUs present: one GPU a trial and the CPUs shared out among them; CPU only: one
    core a trial on small machines (VGG at 32-64 px scales poorly past a few threads)."""
    n_cpu, n_gpu = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    if gpus is None:
        gpus = 1.0 if n_gpu >= 1 else 0.0
    if cpus is None:
        if gpus:
            per_gpu = max(1, int(n_cpu // max(1, n_gpu)))
            cpus = float(max(1, min(8, int(per_gpu * gpus))))
        else:
            cpus = 1.0 if n_cpu <= 8 else 2.0
    return TrialResources(cpus=cpus, gpus=gpus)
