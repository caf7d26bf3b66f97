"""Measurements of this project on the machine at hand (not timed tests).

`python -m benchmarks [--quick] [--real] [--only NAME[,NAME]]`: each benchmark prints a
table and writes `results/bench/NAME.json` (with the machine and a timestamp).
See benchmarks/README.md.
"""

__all__ = ["BENCHMARKS"]

# Run order: in-process measurements first, then those that start Ray.
BENCHMARKS = ("compute", "datapath", "inference", "overhead", "efficiency", "gpu")
