"""The latest figures as one markdown table, from `results/bench/*.json`.

    python -m benchmarks.table                  # print it
    python -m benchmarks.table --update README.md   # replace the block between the markers
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from benchmarks import BENCHMARKS

__all__ = ["render", "BEGIN", "END"]

BEGIN = "<!-- benchmarks:begin (python -m benchmarks.table --update README.md) -->"
END = "<!-- benchmarks:end -->"


def _x(v: float, digits: int = 2) -> str:
    return "never" if v is None or math.isinf(v) else f"{v:.{digits}f}"


def _n(v: float | None, digits: int = 2) -> str:
    """A measurement that may be missing (NaN, saved as null: e.g. no second epoch ran)."""
    return "n/a" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def _efficiency(d: dict) -> list[tuple[str, str]]:
    grid_e = d["grid_trial_epochs"]
    out = []
    for m in d["methods"]:
        reach = (f"never in its {m['trial_epochs']}" if math.isinf(m["epochs_to_grid_best"])
                 else f"{m['epochs_to_grid_best']:.0f} of its {m['trial_epochs']} = "
                      f"{m['fraction_of_grid_epochs']:.2f} x the grid's {grid_e}")
        out.append((f"{m['label']}: best val F1; trial-epochs to reach the grid's best "
                     f"({d['grid_best_val_f1']:.3f})", f"{m['best_val_f1']:.3f}; {reach}"))
    t = d["target"]
    verdict = f"{'met' if t['met'] else 'not met'} ({_x(t['fraction'])})"
    if "with_default_first" in t:
        w = t["with_default_first"]
        verdict += (f"; with the default config first: {'met' if w['met'] else 'not met'} "
                    f"({_x(w['fraction'])})")
    out.append((f"target: {t['rule']} (cap {d['epoch_cap']} epochs, width "
                f"{d['scaling']['width']}, {d['scaling']['image_size']} px)", verdict))
    return out


def _iqr(q: dict, digits: int) -> str:
    return f"{_x(q['median'], digits)} [{_x(q['q25'], digits)}-{_x(q['q75'], digits)}]"


def _search(d: dict) -> list[tuple[str, str]]:
    p, seeds = d["params"], d["params"]["seeds"]
    train = len(d["pool"].get("train_seeds", [0]))
    out = [(f"per method, {seeds} seeds, {p['budget']} trial-epochs each, "
            f"{len(d['pool']['configs'])} tabulated configurations"
            + (f" x {train} training seeds" if train > 1 else "")
            + f" (cap {p['cap']}, {p['workers']} workers)",
            "best val F1 at the end, median [IQR]; trial-epochs to reach random search's "
            f"final best ({d['random_final_best_median']:.3f}), median [IQR] (seeds that "
            "reach it)")]
    for m in d["methods"].values():
        out.append((m["label"], f"{_iqr(m['final_best'], 3)}; "
                    f"{_iqr(m['epochs_to_random_best'], 0)} "
                    f"({m['reached_random_best']}/{seeds})"))
    from benchmarks.search import VERSUS, verdicts

    for mine, key in VERSUS.items():
        for other, c in d.get(key, {}).items():
            if other in ("random-asha", "tpe"):
                continue
            out.append((f"{mine} vs {d['methods'][other]['label']} (Mann-Whitney U, p < 0.05)",
                        verdicts(c)))
    for b in d.get("bounds", {}).values():
        out.append((f"bound: {b['label']} (the stopper knows the table)",
                    f"{_iqr(b['epochs_to_random_best'], 0)} trial-epochs to random's best "
                    f"({b['reached_random_best']}/{seeds})"))
    t = d["target"]
    out.append((f"target: {t['rule']}", f"{'met' if t['met'] else 'not met'} "
                f"({_x(t['fraction'])})"))
    if "default_first" in t:
        f = t["default_first"]
        out.append(("target, ours as gender tune runs it (the default configuration first)",
                    f"{'met' if f['met'] else 'not met'} ({_x(f['fraction'])})"))
    for live in d["live"]:
        o, n = live["overhead"], live["trials"]
        out.append((f"live {live['method']}, {n} trials, against its replay: curves equal to "
                    f"the table's; same configurations; same stops; best F1 live / replay",
                    f"{live['curves_equal_table']}/{n}; {live['same_config_as_replay']}/{n}; "
                    f"{live['same_stop_as_replay']}/{n}; {live['best_live']:.3f} / "
                    f"{live['best_replay']:.3f}"))
        out.append((f"live {live['method']}: Ray's seconds per epoch beyond the loop's; at a "
                    f"trial's start; launching and idle per trial; loop epoch in Ray / table",
                    f"{_n(o['per_epoch_s'])}; {_n(o['trial_start_s'])}; "
                    f"{_n(o['launch_and_idle_per_trial_s'], 1)}; "
                    f"{_n(o['loop_epoch_in_ray_vs_table'])}"))
    b = d.get("bohb")
    if b and "seeds" in b:
        n = len(b["seeds"])
        out.append((f"{b['label']}, {n} seeds at training seed 0, the same budget",
                    f"{_iqr(b['final_best'], 3)}; {_iqr(b['epochs_to_random_best'], 0)} "
                    f"({b['reached_random_best']}/{n}); curves equal to the table's "
                    f"{sum(s['curves_equal_table'] for s in b['seeds'])}/"
                    f"{sum(s['trials'] for s in b['seeds'])} trials"))
        for other, c in b["versus"].items():
            out.append((f"live BOHB vs {d['methods'][other]['label']} (its replays at training "
                        "seed 0; Mann-Whitney U, p < 0.05)", verdicts(c)))
    elif b:
        out.append(("Ray's BOHB (live)", f"skipped: {b['skipped']}"))
    return out


def _overhead(d: dict) -> list[tuple[str, str]]:
    plain, ray_ = d["sides"]
    c = d["config"]
    return [(f"training images/s, plain loop vs one Ray Tune trial ({d['threads']} threads, "
             f"vgg11_bn w{c['width']} {c['image_size']} px; mean of epochs 2+)",
             f"{plain['images_per_s']:.0f} vs {ray_['images_per_s']:.0f} = {d['ratio']:.1%} "
             f"(target >= 95%: {'met' if d['target']['met'] else 'not met'}; median "
             f"{ray_['x_median_images_per_s']:.0%}, best epoch {ray_['x_best_images_per_s']:.0%};"
             f" epoch-to-epoch spread (CV) {plain['spread']:.0%} / {ray_['spread']:.0%})")]


def _datapath(d: dict) -> list[tuple[str, str]]:
    c = d["config"]
    return [(f"{v['label']} ({c['image_size']} px): train images/s; share outside "
             f"forward/backward/step",
             f"{v['images_per_s']:.0f} ({v['x_tensors']:.2f} x); {v['outside_share']:.0%}")
            for v in d["variants"]]


def _compute(d: dict) -> list[tuple[str, str]]:
    out = [(f"fp32 matmul peak ({d['peak_matmul_n']}^2 torch.mm, {d['threads']} threads)",
            f"{d['peak_flops'] / 1e9:.0f} GFLOP/s")]
    models: dict[str, list[str]] = {}
    for r in d["rows"]:
        layout = (f"; {r['channels_last_speedup']:.2f} x NCHW" if "channels_last_speedup" in r
                  else "")  # JSON written before the layout was compared has none
        models.setdefault(r["model"], []).append(
            f"{r['image_size']} px {r['gflop_per_s']:.0f} ({r['share_of_peak']:.0%}{layout})")
    what = ("share of peak; channels_last against contiguous images/s"
            if any("channels_last_speedup" in r for r in d["rows"]) else "share of peak")
    out += [(f"{m} w{d['width']} training GFLOP/s ({what})", ", ".join(v))
            for m, v in models.items()]
    return out


def _inference(d: dict) -> list[tuple[str, str]]:
    c = d["config"]
    out = [(f"{b['backend']} ({c['arch']}{'_bn' if c['batch_norm'] else ''} w{c['width']} "
            f"{c['image_size']} px, {b.get('threads', d['threads'])} thread(s)): p50 / p95 ms "
            f"at batch 1; images/s at batch 64",
            f"{b['latency_ms_p50']:.1f} / {b['latency_ms_p95']:.1f}; "
            f"{b['images_per_s_batch64']:.0f}") for b in d["backends"]]
    if d.get("onnx_note"):
        out.append(("onnxruntime", f"skipped: {d['onnx_note'].split(' (')[0]}"))
    if d.get("default_cpu_engine"):
        out.append(("engine of `gender predict` / `gender serve` on CPU (faster at batch 1, "
                    "by threads)", f"{d['default_cpu_engine']} "
                    f"(measured faster: {d['fastest_engine_batch1']})"))
    return out


def _serve(d: dict) -> list[tuple[str, str]]:
    c, one, local = d["config"], d["http_one_client"]["batching"], d["in_process"]
    what = (f"{c['arch']}{'_bn' if c['batch_norm'] else ''} w{c['width']} {c['image_size']} px, "
            f"{d['engine']} on {d['device']}, {d['cpus_per_replica']:g} CPU per replica")
    rps = d["requests_per_s"]
    return [
        (f"one client, p50 / p99 ms: HTTP via Serve vs in-process decode + forward ({what})",
         f"{one['p50_ms']:.1f} / {one['p99_ms']:.1f} vs {local['p50_ms']:.1f} / "
         f"{local['p99_ms']:.1f}: serving adds {d['overhead_p50_ms']:.1f} ms at p50 "
         f"(target <= 5: {'met' if d['targets']['overhead_p50_le_5ms'] else 'not met'})"),
        ("where one request's time goes (p50 ms): read body, decode, inference, outside the "
         "app (proxy, routing, HTTP)",
         f"{one.get('read_p50_ms', float('nan')):.1f}, {one['decode_p50_ms']:.1f}, "
         f"{one['infer_p50_ms']:.1f}, {one['outside_app_p50_ms']:.1f}"),
        (f"{d['clients']} clients: requests/s with batching (max {d['batching']['max_batch_size']}"
         f", wait {d['batching']['batch_wait_ms']:g} ms) vs --max-batch-size 1",
         f"{rps['batching']:.0f} vs {rps['no batching']:.0f} = {d['batching_speedup']:.2f} x "
         f"(target >= 1.5: {'met' if d['targets']['batching_speedup_ge_1.5'] else 'not met'})"),
    ]


def _gpu(d: dict) -> list[tuple[str, str]]:
    out = [(f"{r['trials_per_gpu']} trial(s) per GPU: aggregate images/s per GPU",
            f"{r['images_per_s_per_gpu']:.0f} ({r['x_one_trial']:.2f} x)") for r in d["sharing"]]
    out += [(f"{v['variant']}: train images/s", f"{v['images_per_s']:.0f} "
             f"({v['x_default']:.2f} x)") for v in d["precision_and_layout"]]
    return out


_ROWS = {"search": _search, "efficiency": _efficiency, "overhead": _overhead,
         "datapath": _datapath, "compute": _compute, "inference": _inference, "serve": _serve,
         "gpu": _gpu}


def render(folder: str | Path = "results/bench") -> str:
    folder = Path(folder)
    found = {n: json.loads((folder / f"{n}.json").read_text())
             for n in BENCHMARKS if (folder / f"{n}.json").is_file()}
    if not found:
        raise SystemExit(f"{folder}: no benchmark JSON there (run `python -m benchmarks`)")
    lines = ["| benchmark | measure | figure |", "|---|---|---|"]
    for name in _ROWS:
        d = found.get(name)
        if d is None:
            continue
        rows = [("", f"skipped: {d['skipped']}")] if "skipped" in d else _ROWS[name](d)
        lines += [f"| {name} ({d['mode']}) | {m} | {f} |" for m, f in rows]
    m = next(iter(found.values()))["machine"]
    stamps = sorted(d["machine"]["timestamp"] for d in found.values())
    loads = [d["machine"]["loadavg_1m"] for d in found.values()]
    lines.append("")
    lines.append(f"Machine: {m['cpu_model']}, {m['cores']} cores, "
                 f"{m['cuda_device'] or 'no GPU'}; torch {m['torch']}, Ray {m['ray']}; "
                 f"finished {stamps[0][:16]} to {stamps[-1][:16]}; run at nice {m['nice']}, the "
                 f"1-minute load average at the end of each benchmark {min(loads):.1f}-"
                 f"{max(loads):.1f} (other work on a shared machine: rates are lower bounds).")
    return "\n".join(lines)


def _update(path: Path, table: str) -> None:
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: no `{BEGIN}` ... `{END}` block to replace")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.table", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", default="results/bench")
    ap.add_argument("--update", metavar="FILE", help="replace the table between the markers")
    args = ap.parse_args(argv)
    table = render(args.folder)
    if args.update:
        _update(Path(args.update), table)
        print(f"updated {args.update}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
