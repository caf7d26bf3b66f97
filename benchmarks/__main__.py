"""`python -m benchmarks`: run the benchmarks, print their tables, write their JSON."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from benchmarks import BENCHMARKS
from benchmarks.common import Options, machine, save


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in BENCHMARKS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown benchmark {', '.join(bad) or repr(text)} "
                                         f"(choose from {', '.join(BENCHMARKS)})")
    return names


def _stop_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--only", type=_names, default=list(BENCHMARKS), metavar="NAME[,NAME]",
                    help=f"run only these ({', '.join(BENCHMARKS)})")
    ap.add_argument("--quick", action="store_true", help="a few minutes: smaller every benchmark")
    ap.add_argument("--real", action="store_true",
                    help="data-bound benchmarks on ../shared/data/celeba-gender (if present)")
    ap.add_argument("--model", default=None,
                    help="inference, serve: a model.pt (or its folder)")
    ap.add_argument("--gpus-per-replica", type=float, default=0.0,
                    help="serve: each replica on this share of a GPU (CUDA machines)")
    ap.add_argument("--out", default="results/bench", help="JSON and plots (default: %(default)s)")
    ap.add_argument("--rebuild", action="store_true",
                    help="search: retrain its cached table of learning curves")
    ap.add_argument("--experiment", default=None,
                    help="members, seeds: a finished experiment (results/NAME) to read")
    args = ap.parse_args(argv)
    opts = Options(quick=args.quick, real=args.real, out=Path(args.out), model=args.model,
                   gpus_per_replica=args.gpus_per_replica, rebuild=args.rebuild,
                   experiment=args.experiment)
    # Ray's Tune warns about slow checkpoint syncs on a busy machine; that is the point here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # `start_ray`'s policy (token auth), set before anything imports ray: Ray reads the
    # mode when it is imported, and a driver imported without it cannot join the GCS
    # that `ray.init` then starts with it.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    mode = "quick" if opts.quick else "full"
    failed, t_all = [], time.perf_counter()
    for name in [n for n in BENCHMARKS if n in args.only]:
        print(f"\n== {name} ({mode}{', real data' if opts.real else ''}) ==", flush=True)
        t0 = time.perf_counter()
        try:
            result = importlib.import_module(f"benchmarks.{name}").run(opts)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        finally:
            _stop_ray()
        result = {"benchmark": name, "mode": mode, "real_data": opts.real,
                  "seconds": time.perf_counter() - t0, "machine": machine(), **result}
        print(f"-> {save(result, opts.out / f'{name}.json')} ({result['seconds']:.0f} s)")
    print(f"\nbenchmarks: {time.perf_counter() - t_all:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
