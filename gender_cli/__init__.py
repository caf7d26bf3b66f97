"""The `gender` command: the layer above `gender/` (the classifier) and `tuning/` (Ray Tune).

Neither package imports this one; it builds one parser from both and maps each
subcommand to a typed function. Heavy imports (torch, ray) happen inside the subcommands,
so `gender --help` stays instant.
"""

from gender_cli.main import build_parser, main

__all__ = ["main", "build_parser"]
