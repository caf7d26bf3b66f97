"""Measurements of this project on the machine at hand (not timed tests).

`python -m benchmarks [--quick] [--real] [--only NAME[,NAME]]`: each benchmark prints a
table and writes `results/bench/NAME.json` (with the machine and a timestamp).
See benchmarks/README.md.
"""

__all__ = ["BENCHMARKS"]

# Run order: the longest and most telling first. Each that starts Ray shuts it down at
# the end, so the in-process measurements never share the cores with idle Ray processes.
BENCHMARKS = ("search", "efficiency", "overhead", "datapath", "compute", "inference", "serve",
              "gpu", "schedule", "learning_curve", "seeds", "recipes",
              "members")
