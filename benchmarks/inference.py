"""Inference of an exported model on this machine's CPU: eager PyTorch and ONNX Runtime
(`model.onnx`), the two engines of `gender.predict.Predictor`, and TorchScript for
reference (traced here; the project no longer writes `model.ts`).

Every backend takes the same uint8 N x 3 x S x S batch and returns P(male), the
normalisation included. Latency at batch 1 (p50/p95), throughput at batch 64, with one
thread (a `gender serve` replica's default: one CPU) and with every core. The faster of
eager and ONNX Runtime is `gender.constants.DEFAULT_CPU_ENGINE`.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, set_threads
from gender.config import TrainConfig
from gender.constants import DEFAULT_CPU_ENGINE
from gender.export import load_model, onnx_session
from gender.io import resolve_model_path
from gender.pipeline import train_command
from gender.predict import Predictor

__all__ = ["run", "bench_model"]

TINY = TrainConfig(arch="vgg11", batch_norm=True, width=0.25, head="gap", image_size=64,
                   epochs=1, seed=0)
FULL = {"iters": 200, "reps64": 20, "size": 64}
QUICK = {"iters": 40, "reps64": 5, "size": 32}


def _times(fn, x: np.ndarray, n: int) -> list[float]:
    out = []
    with torch.inference_mode():
        for _ in range(n):
            t0 = time.perf_counter()
            fn(x)
            out.append(time.perf_counter() - t0)
    return out


def _measure(backends: dict, x: np.ndarray, n: int, rounds: int = 5) -> dict[str, np.ndarray]:
    """`n` timings of each backend on `x`, taken in turns, so that a
    change in the machine's load falls on every backend alike."""
    for fn in backends.values():
        _times(fn, x, 3)  # warm-up: allocator, TorchScript's profiling runs
    out = {name: [] for name in backends}
    for _ in range(rounds):
        for name, fn in backends.items():
            out[name] += _times(fn, x, max(1, n // rounds))
    return {name: np.array(v) for name, v in out.items()}


def bench_model(opts: Options, work: Path, size: int) -> Path | None:
    """`--model`, or a tiny model trained here for one epoch (timing needs no accuracy);
    None when --real is asked and the real faces are absent."""
    if opts.model:
        path = resolve_model_path(opts.model)
        print(f"model {path}")
        return path
    data = data_dir(opts, "model")
    if data is None:
        return None
    tiny = TINY.replace(image_size=size)
    print(f"training a tiny model ({tiny.model_name} width {tiny.width}, {tiny.image_size} px, "
          f"1 epoch) on {data}", flush=True)
    train_command(tiny, data, work / "model", torch.device("cpu"), progress=False)
    return work / "model" / "model.pt"


def run(opts: Options) -> dict:
    p = QUICK if opts.quick else FULL
    threads = set_threads()
    work = opts.runs / "inference"
    model_path = bench_model(opts, work, p["size"])
    if model_path is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    loaded = load_model(model_path)
    cfg = loaded.config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream
        ts = torch.jit.freeze(torch.jit.trace(loaded.module, torch.zeros(
            1, 3, cfg.image_size, cfg.image_size, dtype=torch.uint8)).eval())
    eager, onnx = Predictor(loaded, engine="torch"), Predictor(loaded, engine="onnx")
    # numpy in, numpy out for every backend, as `Predictor.predict_arrays` is called.
    backends = {"eager": eager.predict_arrays, "onnxruntime": onnx.predict_arrays,
                "torchscript": lambda x: ts(torch.from_numpy(x)).numpy()}
    rng = np.random.default_rng(0)
    s = cfg.image_size
    one = rng.integers(0, 256, (1, 3, s, s), dtype=np.uint8)
    batch = rng.integers(0, 256, (64, 3, s, s), dtype=np.uint8)
    rows = []
    for n_threads in sorted({1, threads}):
        torch.set_num_threads(n_threads)
        onnx.session = onnx_session(loaded, n_threads)
        lat_all = _measure(backends, one, p["iters"])
        t64_all = _measure(backends, batch, p["reps64"])
        for name in backends:
            lat, t64 = lat_all[name] * 1e3, t64_all[name]
            rows.append({"backend": name, "threads": n_threads,
                         "latency_ms_p50": float(np.percentile(lat, 50)),
                         "latency_ms_p95": float(np.percentile(lat, 95)),
                         "images_per_s_batch64": float(64 / np.median(t64))})
    set_threads()
    print(fmt_table(rows, {"backend": "backend", "threads": "threads",
                           "latency_ms_p50": "p50 ms (batch 1)",
                           "latency_ms_p95": "p95 ms (batch 1)",
                           "images_per_s_batch64": "images/s (batch 64)"}))
    fastest = {n: min((r for r in rows if r["threads"] == n),
                      key=lambda r: r["latency_ms_p50"] if r["backend"] != "torchscript"
                      else float("inf"))["backend"] for n in sorted({1, threads})}
    print(f"inference: faster engine at batch 1 by threads: {fastest}; "
          f"DEFAULT_CPU_ENGINE = {DEFAULT_CPU_ENGINE!r}")
    return {"model": str(model_path), "config": cfg.to_dict(), "threads": threads,
            "iters_batch1": p["iters"], "reps_batch64": p["reps64"], "backends": rows,
            "fastest_engine_batch1": fastest, "default_cpu_engine": DEFAULT_CPU_ENGINE}
