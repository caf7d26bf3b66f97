"""`gender`: one parser, one function a subcommand, one line on stderr for bad input."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gender.errors import ConfigError, UserError
from gender.io import one_line
from gender_cli.flags import add_config_flags, config_from_args, flag_name, nonneg_int, pos_int

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        # No abbreviations: `--epoch 3` is a typo to refuse, not a flag to guess.
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        print(one_line(f"{self.prog}: error: {message}"), file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    from gender_cli import serve, tune

    parser = _Parser(prog="gender", description="Face gender classifier: train, tune, predict, "
                                                "serve.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="inspect or draw datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    chk = dsub.add_parser("check", help="report a dataset's layout, counts, what was ignored")
    chk.add_argument("dir")
    chk.set_defaults(handler=cmd_data_check)
    syn = dsub.add_parser("synth", help="draw synthetic faces in CelebA's layout")
    syn.add_argument("out")
    syn.add_argument("--n", type=pos_int, default=6000)
    syn.add_argument("--seed", type=nonneg_int, default=0)
    syn.add_argument("--size", type=pos_int, default=64)
    syn.set_defaults(handler=cmd_data_synth)

    tr = sub.add_parser("train", help="one training run, no Ray")
    tr.add_argument("--data", default=None, help="dataset folder (default: data/synthetic)")
    tr.add_argument("--out", default="results/train", help="output folder")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    tr.add_argument("--split-seed", type=nonneg_int, default=0,
                    help="seed of the train/val/test split, independent of --seed "
                         "(default: %(default)s)")
    add_config_flags(tr)
    tr.set_defaults(handler=cmd_train)

    pr = sub.add_parser("predict", help="label images with a saved model")
    pr.add_argument("model", help="model.pt or a folder holding one")
    pr.add_argument("paths", nargs="+", help="image files or folders")
    pr.add_argument("--json", action="store_true", help="one JSON object per line")
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--engine", default="auto", choices=["auto", "torch", "onnx"],
                    help="auto: ONNX Runtime on CPU, PyTorch on GPU (as gender serve)")
    pr.set_defaults(handler=cmd_predict)

    tune.add_commands(sub)
    serve.add_commands(sub)
    return parser


def cmd_data_check(args) -> int:
    from gender.data.layouts import describe, read_dataset

    print(describe(read_dataset(args.dir)))
    return 0


def cmd_data_synth(args) -> int:
    from gender.data.synth import synthesize
    from gender.io import check_writable_dir

    check_writable_dir(args.out, "OUT")
    try:
        out = synthesize(args.out, n=args.n, seed=args.seed, size=args.size)
    except ConfigError as e:
        if e.field and e.rule:  # name the flag the user typed, not the parameter
            raise ConfigError(f"{flag_name(e.field)} {getattr(args, e.field)}: must be "
                              f"{e.rule}", e.field, e.rule) from None
        raise
    print(f"wrote {args.n} synthetic faces to {out}")
    return 0


def cmd_train(args) -> int:
    from gender.data.synth import resolve_data
    from gender.io import check_writable_dir

    cfg = config_from_args(args)
    out = check_writable_dir(Path(args.out), "--out")
    # Weights are loaded when the model is built, after the data: a missing file fails now.
    if cfg.pretrained not in (None, "imagenet") and not Path(cfg.pretrained).is_file():
        raise UserError(f"--pretrained {cfg.pretrained}: no such file")
    # The training stack (torch, torchvision) is imported once the flags are known good.
    from gender.engine import resolve_device
    from gender.pipeline import train_command

    device = resolve_device(args.device)
    data = resolve_data(args.data)
    m = train_command(cfg, data, out, device, split_seed=args.split_seed)
    print(f"test accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  AUC {m['auc']:.4f}  "
          f"latency p50 {m['latency_ms_p50']:.2f} ms  ({m['n_test']} test images)")
    print(f"wrote {out}/model.pt, metrics.json, history.csv, splits.csv")
    return 0


def cmd_predict(args) -> int:
    from gender.predict import predict

    failed = 0
    for row in predict(args.model, args.paths, device=args.device, engine=args.engine):
        if "error" in row:
            failed += 1
            print(one_line(f"{row['path']}: {row['error']}"), file=sys.stderr)
            if args.json:
                print(json.dumps(row), flush=True)
        elif args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{one_line(row['path'])}\t{row['label']}\t{row['prob_male']:.4f}",
                  flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    # Secure by default: any Ray this process starts or joins uses token authentication.
    # Set before Ray is imported, since Ray reads its auth mode once per process.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as e:
        print(one_line(f"gender {args.command}: error: {e}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gender: interrupted", file=sys.stderr)
        return 130
