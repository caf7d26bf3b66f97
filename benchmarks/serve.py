"""`gender serve` over HTTP on this machine, beside the same work in-process.

- one client: p50/p99 latency of POST /api/predict (one image each, keep-alive), and the
  same decode + forward in this process with the replica's thread count; the difference
  is what serving adds. The app's Server-Timing header splits the HTTP time into read,
  decode, inference (batch queue included) and the rest (Serve's proxy, routing, HTTP);
- 16 concurrent clients: requests/s with dynamic batching (the defaults) and with
  `--max-batch-size 1`, deployed in turns (batching, none, none, batching) so a change in
  the machine's load falls on both.

Serve runs on a local Ray of its own through `serving.run.start`, as `gender serve` does.
With `--gpus-per-replica F` the replica (and the in-process side) run on CUDA.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import time
from urllib.parse import urlsplit

import numpy as np
import torch

from benchmarks.common import Options, data_dir, fmt_table
from benchmarks.inference import bench_model
from gender.constants import IMAGE_EXTENSIONS
from gender.predict import Predictor, label_of

__all__ = ["run"]

FULL = {"one": 300, "warmup": 30, "seconds": 20.0, "size": 64, "rounds": 2}
QUICK = {"one": 60, "warmup": 10, "seconds": 5.0, "size": 32, "rounds": 1}
CLIENTS = 16


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timing(header: str | None) -> dict[str, float]:
    out = {}
    for part in (header or "").split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur)
    return out


def _bodies(opts: Options, n: int = 64) -> list[bytes]:
    """Image files as a user would send them: the synthetic faces (PNG), or CelebA's JPEGs
    with --real."""
    root = data_dir(opts, "serve")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)[:n]
    if not files:
        raise RuntimeError(f"{root}: no image files to send")
    return [p.read_bytes() for p in files]


def _in_process(predictor: Predictor, bodies: list[bytes], n: int, warmup: int) -> dict:
    """What `gender predict` does per picture: decode, forward, label."""
    total, decode, model = [], [], []
    for i in range(warmup + n):
        body = bodies[i % len(bodies)]
        t0 = time.perf_counter()
        image = predictor.decode(body)
        t1 = time.perf_counter()
        label_of(predictor.predict_arrays(image[None])[0])
        t2 = time.perf_counter()
        if i >= warmup:
            total.append((t2 - t0) * 1e3)
            decode.append((t1 - t0) * 1e3)
            model.append((t2 - t1) * 1e3)
    return {"p50_ms": _pct(total, 50), "p99_ms": _pct(total, 99),
            "decode_p50_ms": _pct(decode, 50), "model_p50_ms": _pct(model, 50)}


def _one_client(url: str, bodies: list[bytes], n: int, warmup: int) -> dict:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    total, app = [], {"read": [], "decode": [], "infer": [], "app": []}
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            conn.request("POST", "/api/predict", body=bodies[i % len(bodies)],
                         headers={"Content-Type": "application/octet-stream"})
            r = conn.getresponse()
            r.read()
            dt = (time.perf_counter() - t0) * 1e3
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status} from {url}")
            if i >= warmup:
                total.append(dt)
                for k, v in _timing(r.getheader("server-timing")).items():
                    app.setdefault(k, []).append(v)
    finally:
        conn.close()
    out = {"p50_ms": _pct(total, 50), "p99_ms": _pct(total, 99)}
    out.update({f"{k}_p50_ms": _pct(v, 50) for k, v in app.items()})
    outside = [t - a for t, a in zip(total, app["app"], strict=True)]
    out["outside_app_p50_ms"] = _pct(outside, 50)  # proxy, routing, HTTP, client
    return out


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """`clients` closed-loop clients for `seconds` (after 2 s of warm-up)."""
    import aiohttp

    latencies, errors = [], 0
    start = time.perf_counter()
    t_measure, t_end = start + 2.0, start + 2.0 + seconds
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client(k: int) -> None:
            nonlocal errors
            i = k
            while (now := time.perf_counter()) < t_end:
                async with session.post(url + "api/predict", data=bodies[i % len(bodies)],
                                        headers={"Content-Type": "application/octet-stream"}) as r:
                    await r.read()
                    done = time.perf_counter()
                if now >= t_measure and done <= t_end:
                    if r.status == 200:
                        latencies.append((done - now) * 1e3)
                    else:
                        errors += 1
                i += clients

        await asyncio.gather(*(client(k) for k in range(clients)))
    return {"requests_per_s": len(latencies) / seconds, "p50_ms": _pct(latencies, 50),
            "p99_ms": _pct(latencies, 99), "errors": errors, "requests": len(latencies)}


def run(opts: Options) -> dict:
    import ray

    from serving.options import ServeOptions
    from serving.run import start, stop
    from tuning.cluster import start_ray

    p = QUICK if opts.quick else FULL
    gpus = opts.gpus_per_replica
    device = "cuda" if gpus and torch.cuda.is_available() else "cpu"
    model_path = bench_model(opts, opts.runs / "serve", p["size"])
    if model_path is None:
        return {"skipped": "--real: the real faces are absent"}
    bodies = _bodies(opts)
    cpus = 1.0  # one CPU per replica (`gender serve`'s default): one model thread
    torch.set_num_threads(int(cpus))
    predictor = Predictor(model_path, device)
    print(f"serve: model {model_path} ({predictor.image_size} px, engine {predictor.engine} "
          f"on {device}), {len(bodies)} image bodies", flush=True)
    in_process = _in_process(predictor, bodies, p["one"], p["warmup"])

    start_ray(None, quiet=True)  # as `gender serve` does: local, loopback, token auth
    port = _free_port()
    base = {"model": str(model_path), "cpus_per_replica": cpus, "gpus_per_replica": gpus}
    configs = {"batching": ServeOptions(**base),
               "no batching": ServeOptions(**base, max_batch_size=1)}
    order = ["batching", "no batching", "no batching", "batching"][:2 * p["rounds"]]
    http_one, load = {}, []
    try:
        for i, name in enumerate(order):
            served = start(configs[name], "127.0.0.1", port, timeout=600)
            try:
                if name not in http_one:
                    http_one[name] = _one_client(served.url, bodies, p["one"], p["warmup"])
                row = asyncio.run(_load(served.url, bodies, CLIENTS, p["seconds"]))
                load.append({"config": name, "turn": i + 1, **row})
                print(f"serve: {name}, turn {i + 1}: {row['requests_per_s']:.0f} requests/s "
                      f"at {CLIENTS} clients (p50 {row['p50_ms']:.1f} ms)", flush=True)
            finally:
                stop(served)
    finally:
        ray.shutdown()

    rps = {n: float(np.mean([r["requests_per_s"] for r in load if r["config"] == n]))
           for n in configs}
    one = http_one["batching"]
    overhead = one["p50_ms"] - in_process["p50_ms"]
    rows = [{"side": "in-process (decode + forward)", **in_process},
            *({"side": f"HTTP via Serve, {n}", **h} for n, h in http_one.items())]
    print(fmt_table(rows, {"side": "one client", "p50_ms": "p50 ms", "p99_ms": "p99 ms",
                           "decode_p50_ms": "decode p50", "infer_p50_ms": "inference p50",
                           "model_p50_ms": "model p50", "outside_app_p50_ms":
                           "outside the app p50"}))
    print(fmt_table(load, {"config": f"{CLIENTS} clients", "turn": "turn",
                           "requests_per_s": "requests/s", "p50_ms": "p50 ms",
                           "p99_ms": "p99 ms", "errors": "errors"}))
    speedup = rps["batching"] / rps["no batching"]
    print(f"serve: batching {speedup:.2f} x the requests/s of none; serving adds "
          f"{overhead:.1f} ms at p50 over in-process")
    return {"model": str(model_path), "config": predictor.model.config.to_dict(),
            "engine": predictor.engine, "device": device, "cpus_per_replica": cpus,
            "gpus_per_replica": gpus, "clients": CLIENTS, "seconds_per_turn": p["seconds"],
            "requests_one_client": p["one"], "batching": vars(configs["batching"]) | {
                "token": None, "max_ongoing_requests": configs["batching"].max_ongoing_requests},
            "in_process": in_process, "http_one_client": http_one, "load": load,
            "requests_per_s": rps, "batching_speedup": speedup, "overhead_p50_ms": overhead,
            "targets": {"batching_speedup_ge_1.5": speedup >= 1.5,
                        "overhead_p50_le_5ms": overhead <= 5.0}}
