"""Command-line flags generated from `TrainConfig`'s fields: their names, types, choices,
defaults and help come from the dataclass, so a new hyperparameter is one edit there."""

from __future__ import annotations

import argparse
import dataclasses
import math

__all__ = ["add_config_flags", "config_from_args", "flag_name", "pos_int", "nonneg_int",
           "auto_or_nonneg_int",
           "number", "positive", "port_number"]


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None


def pos_int(s: str) -> int:
    v = _int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def nonneg_int(s: str) -> int:
    v = _int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def auto_or_nonneg_int(s: str) -> int | None:
    """"auto" (None: the program chooses) or a whole number >= 0."""
    return None if s == "auto" else nonneg_int(s)


def port_number(s: str) -> int:
    v = _int(s)
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in [1, 65535], got {v}")
    return v


def number(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {s}")
    return v


def positive(s: str) -> float:
    v = number(s)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {s}")
    return v


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainConfig` field (booleans as `--x/--no-x`)."""
    from gender.config import TrainConfig

    group = parser.add_argument_group("hyperparameters (TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        meta, default = f.metadata, f.default
        kwargs = {"default": default, "dest": f.name,
                  "help": f"{meta.get('help', '')} (default: %(default)s)"}
        if f.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        elif f.type == "int":
            kwargs["type"] = nonneg_int if f.name == "seed" else pos_int
        elif f.type == "float":
            kwargs["type"] = number
        group.add_argument(flag_name(f.name), **kwargs)


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags describe; a broken rule names the flag."""
    from gender.config import TrainConfig
    from gender.errors import ConfigError

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        return TrainConfig.from_dict({k: v for k, v in vars(args).items() if k in names})
    except ConfigError as e:
        if e.field and e.rule:
            raise ConfigError(f"{flag_name(e.field)} {getattr(args, e.field)}: must be "
                              f"{e.rule}", e.field, e.rule) from None
        raise
