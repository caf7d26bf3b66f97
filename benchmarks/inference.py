"""Inference of an exported model on this machine's CPU: eager PyTorch (the path of
`gender predict`), TorchScript (`model.ts`) and ONNX Runtime when it is installed.

Every backend takes the same uint8 N x 3 x S x S batch and returns P(male), the
normalisation included. Latency at batch 1 (p50/p95), throughput at batch 64.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, set_threads
from gender.config import TrainConfig
from gender.export import load_model, resolve_model_path
from gender.pipeline import train_command

__all__ = ["run"]

TINY = TrainConfig(arch="vgg11", batch_norm=True, width=0.25, head="gap", image_size=64,
                   epochs=1, seed=0)
FULL = {"iters": 200, "reps64": 20, "size": 64}
QUICK = {"iters": 40, "reps64": 5, "size": 32}


def _times(fn, x: torch.Tensor, n: int) -> list[float]:
    out = []
    with torch.inference_mode():
        for _ in range(n):
            t0 = time.perf_counter()
            fn(x)
            out.append(time.perf_counter() - t0)
    return out


def _measure(backends: dict, x: torch.Tensor, n: int, rounds: int = 5) -> dict[str, np.ndarray]:
    """`n` timings of each backend on `x`, taken in turns, so that a
    change in the machine's load falls on every backend alike."""
    for fn in backends.values():
        _times(fn, x, 3)  # warm-up: allocator, TorchScript's profiling runs
    out = {name: [] for name in backends}
    for _ in range(rounds):
        for name, fn in backends.items():
            out[name] += _times(fn, x, max(1, n // rounds))
    return {name: np.array(v) for name, v in out.items()}


def _onnx(ts_path, onnx_path, size: int):
    """An ONNX Runtime session on the TorchScript model, or (None, why not)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed (pip install onnxruntime to include it)"
    try:
        example = torch.zeros(1, 3, size, size, dtype=torch.uint8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ts = torch.jit.load(str(ts_path))
            torch.onnx.export(ts, (example,), str(onnx_path), input_names=["images"],
                              output_names=["prob_male"], dynamic_axes={"images": {0: "n"}},
                              dynamo=False)
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as e:  # an exporter/runtime mismatch is a finding, not a crash
        return None, f"ONNX export or load failed: {type(e).__name__}: {str(e)[:200]}"
    return (lambda x: sess.run(None, {"images": x.numpy()})[0]), None


def run(opts: Options) -> dict:
    p = QUICK if opts.quick else FULL
    threads = set_threads()
    work = opts.runs / "inference"
    cpu = torch.device("cpu")
    if opts.model:
        model_path = resolve_model_path(opts.model)
        print(f"inference: model {model_path}")
    else:
        data = data_dir(opts, "inference")
        if data is None:
            return {"skipped": f"--real: {REAL_DATA} is absent"}
        tiny = TINY.replace(image_size=p["size"])
        print(f"inference: training a tiny model ({tiny.model_name} width {tiny.width}, "
              f"{tiny.image_size} px, 1 epoch) on {data}", flush=True)
        train_command(tiny, data, work / "model", cpu, progress=False)
        model_path = work / "model" / "model.pt"
    loaded = load_model(model_path)
    model, cfg = loaded.module, loaded.config
    ts_path = work / "model.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream
        torch.jit.trace(model, torch.zeros(1, 3, cfg.image_size, cfg.image_size,
                                           dtype=torch.uint8)).save(str(ts_path))
        ts = torch.jit.load(str(ts_path)).eval()
    backends = {"eager": lambda x: model(x), "torchscript": lambda x: ts(x)}
    onnx_fn, note = _onnx(ts_path, work / "model.onnx", cfg.image_size)
    if onnx_fn is not None:
        backends["onnxruntime"] = onnx_fn
    gen = torch.Generator().manual_seed(0)
    s = cfg.image_size
    one = torch.randint(0, 256, (1, 3, s, s), dtype=torch.uint8, generator=gen)
    batch = torch.randint(0, 256, (64, 3, s, s), dtype=torch.uint8, generator=gen)
    lat_all = _measure(backends, one, p["iters"])
    t64_all = _measure(backends, batch, p["reps64"])
    rows = []
    for name in backends:
        lat, t64 = lat_all[name] * 1e3, t64_all[name]
        rows.append({"backend": name, "latency_ms_p50": float(np.percentile(lat, 50)),
                     "latency_ms_p95": float(np.percentile(lat, 95)),
                     "images_per_s_batch64": float(64 / np.median(t64))})
    print(fmt_table(rows, {"backend": "backend", "latency_ms_p50": "p50 ms (batch 1)",
                           "latency_ms_p95": "p95 ms (batch 1)",
                           "images_per_s_batch64": "images/s (batch 64)"}))
    if note:
        print(f"inference: onnxruntime skipped: {note}")
    return {"model": str(model_path), "config": cfg.to_dict(), "threads": threads,
            "iters_batch1": p["iters"], "reps_batch64": p["reps64"], "backends": rows,
            "onnx_note": note}
