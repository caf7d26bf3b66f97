"""What one trial gets: CPUs and (fractional) GPUs, defaulting from the cluster, and
checked against it: a trial no node can hold would wait forever."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gender.errors import ConfigError

__all__ = ["TrialResources", "default_resources", "check_fits"]


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


def _fits(need: dict, node: dict) -> bool:
    return all(node.get(k, 0.0) >= v for k, v in need.items() if v)


def check_fits(res: TrialResources, nodes: list[dict], to_add: list[dict] | None,
               given: tuple[str, ...] = ("CPU", "GPU")) -> None:
    """Refuse, before any trial starts, a request that no node can hold.

    A trial runs on one node, so each node is compared on its own (two 1-GPU nodes do not
    make a place for a 2-GPU trial). `nodes`: the nodes alive now; `to_add`: the node
    types an autoscaler may add ([] for none, None when it has types we cannot read, in
    which case it might add anything). Ray would leave such a trial pending forever.
    `given`: the resources the user asked for; a default derived from them (the CPUs that
    go with a GPU share) is named only when no given one is short.
    """
    need = {"CPU": res.cpus, "GPU": res.gpus}
    shapes = nodes + (to_add or [])
    if to_add is None or any(_fits(need, n) for n in shapes):
        return
    flags = {"CPU": ("--cpus-per-trial", "CPUs"), "GPU": ("--gpus-per-trial", "GPUs")}
    short = [k for k in ("GPU", "CPU") if need[k] > max((n.get(k, 0.0) for n in shapes),
                                                          default=0.0)]
    short = [k for k in short if k in given] or short
    culprits = short or ["GPU", "CPU"]  # each fits somewhere, never both on one node
    said = " ".join(f"{flags[k][0]} {need[k]:g}" for k in culprits)
    added = (f"; the autoscaler can add: {_shapes(to_add)}" if to_add else
             "; no autoscaler adds nodes")
    raise ConfigError(f"{said}: no node of this cluster can hold one trial (nodes now: "
                      f"{_shapes(nodes)}{added}), so it would wait forever")


def _shapes(nodes: list[dict]) -> str:
    """"2 x 8 CPUs 1 GPU; 1 x 4 CPUs 0 GPUs": identical nodes counted once."""
    counts = Counter(f"{n.get('CPU', 0):g} CPUs {n.get('GPU', 0):g} GPUs" for n in nodes)
    return "; ".join(f"{k} x {shape}" for shape, k in counts.items()) or "none"
