"""The `gender` command: one entry point, typed subcommands.

Bad input of any kind ends with one line on stderr and exit code 2, never a traceback.
Heavy imports (torch, ray) happen inside the subcommands so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gender.errors import UserError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _pos_int(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _float(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a number") from None


def add_train_flags(p: argparse.ArgumentParser) -> None:
    from gender.config import ARCHS, BALANCE, HEADS, OPTIMIZERS, SCHEDULES, TrainConfig

    d = TrainConfig()
    p.add_argument("--epochs", type=_pos_int, default=d.epochs)
    p.add_argument("--image-size", type=_pos_int, default=d.image_size,
                   help="pixels, a multiple of 32 (default %(default)s)")
    p.add_argument("--arch", choices=ARCHS, default=d.arch)
    p.add_argument("--no-bn", dest="batch_norm", action="store_false",
                   help="plain VGG without batch norm")
    p.add_argument("--width", type=_float, default=d.width, help="channel multiplier")
    p.add_argument("--head", choices=HEADS, default=d.head)
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=_float, default=d.lr)
    p.add_argument("--lr-schedule", choices=SCHEDULES, default=d.lr_schedule)
    p.add_argument("--momentum", type=_float, default=d.momentum)
    p.add_argument("--alpha", type=_float, default=d.alpha)
    p.add_argument("--weight-decay", type=_float, default=d.weight_decay)
    p.add_argument("--batch-size", type=_pos_int, default=d.batch_size)
    p.add_argument("--dropout", type=_float, default=d.dropout)
    p.add_argument("--augment", type=_float, default=d.augment, help="strength 0..1")
    p.add_argument("--mixup", type=_float, default=d.mixup,
                   help="mixup's Beta(a, a) parameter, e.g. 0.2 (0 = off)")
    p.add_argument("--ema", type=_float, default=d.ema,
                   help="moving average of the weights, decay per step (0 = off)")
    p.add_argument("--balance", choices=BALANCE, default=d.balance)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--pretrained", default=None,
                   help="'imagenet' (torchvision cache) or a weights file (width 1, classic head)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gender", description="Face gender classifier: train, tune, predict.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    data = sub.add_parser("data", help="inspect or draw datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    chk = dsub.add_parser("check", help="report a dataset's layout, counts, what was ignored")
    chk.add_argument("dir")
    syn = dsub.add_parser("synth", help="draw synthetic faces in CelebA's layout")
    syn.add_argument("out")
    syn.add_argument("--n", type=_pos_int, default=6000)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--size", type=_pos_int, default=64)

    tr = sub.add_parser("train", help="one training run, no Ray")
    tr.add_argument("--data", default=None, help="dataset folder (default: data/synthetic)")
    tr.add_argument("--out", default="results/train", help="output folder")
    tr.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    add_train_flags(tr)

    pr = sub.add_parser("predict", help="label images with a saved model")
    pr.add_argument("model", help="model.pt or a folder holding one")
    pr.add_argument("paths", nargs="+", help="image files or folders")
    pr.add_argument("--json", action="store_true", help="one JSON object per line")
    pr.add_argument("--device", default="cpu")

    from tuning.cli import add_tuning_commands

    add_tuning_commands(sub, _pos_int, _float)
    return parser


def cmd_data(args) -> int:
    if args.data_command == "check":
        from gender.data.layouts import describe, read_dataset

        print(describe(read_dataset(args.dir)))
    else:
        from gender.data.synth import synthesize

        out = synthesize(args.out, n=args.n, seed=args.seed, size=args.size)
        print(f"wrote {args.n} synthetic faces to {out}")
    return 0


def cmd_train(args) -> int:
    from gender.config import TrainConfig
    from gender.engine import resolve_device
    from gender.pipeline import resolve_data, train_command

    names = {f for f in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig.from_dict({k: v for k, v in vars(args).items() if k in names})
    device = resolve_device(args.device)
    data = resolve_data(args.data)
    out = Path(args.out)
    m = train_command(cfg, data, out, device)
    print(f"test accuracy {m['accuracy']:.4f}  F1 {m['f1']:.4f}  AUC {m['auc']:.4f}  "
          f"latency p50 {m['latency_ms_p50']:.2f} ms  ({m['n_test']} test images)")
    print(f"wrote {out}/model.pt, metrics.json, history.csv, splits.csv")
    return 0


def cmd_predict(args) -> int:
    from gender.predict import predict

    failed = 0
    for row in predict(args.model, args.paths, device=args.device):
        if "error" in row:
            failed += 1
            print(f"{row['path']}: {row['error']}", file=sys.stderr)
            if args.json:
                print(json.dumps(row), flush=True)
        elif args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{row['path']}\t{row['label']}\t{row['prob_male']:.4f}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    # Secure by default: any Ray this process starts or joins uses token authentication.
    # Set before Ray is imported, since Ray reads its auth mode once per process.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    args = build_parser().parse_args(argv)
    handler = {"data": cmd_data, "train": cmd_train, "predict": cmd_predict}.get(args.command)
    if handler is None:
        handler = args.handler
    try:
        return handler(args)
    except UserError as e:
        print(f"gender: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gender: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
