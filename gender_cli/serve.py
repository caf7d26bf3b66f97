"""`gender serve MODEL`: the page and the API on Ray Serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading

from gender_cli.flags import number as float_
from gender_cli.flags import pos_int, positive

__all__ = ["add_commands"]

TOKEN_ENV = "GENDER_SERVE_TOKEN"
MIN_TOKEN = 16  # characters: a token is a long random string, not a password


def _replicas(s: str) -> int | str:
    return "auto" if s == "auto" else pos_int(s)


def add_commands(sub) -> None:
    sv = sub.add_parser("serve", help="the model as a web page and a JSON API on Ray Serve")
    sv.add_argument("model", help="model.pt or a folder holding one (e.g. results/NAME/best)")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default: %(default)s; another needs --token)")
    sv.add_argument("--port", type=pos_int, default=8000, help="(default: %(default)s)")
    sv.add_argument("--replicas", type=_replicas, default=1,
                    help="N, or auto: Serve's autoscaling from 1 to --max-replicas "
                         "(default: %(default)s)")
    sv.add_argument("--max-replicas", type=pos_int, default=None,
                    help="with --replicas auto (default: what fits the cluster at start)")
    sv.add_argument("--cpus-per-replica", type=positive, default=1.0,
                    help="CPUs (and model threads) per replica (default: %(default)s)")
    sv.add_argument("--gpus-per-replica", type=float_, default=0.0,
                    help="e.g. 0.25: four replicas share a GPU (default: %(default)s)")
    sv.add_argument("--max-batch-size", type=pos_int, default=16,
                    help="requests one forward pass may take (default: %(default)s; "
                         "1 turns batching off)")
    sv.add_argument("--batch-wait-ms", type=float_, default=2.0,
                    help="how long a batch waits to fill (default: %(default)s)")
    sv.add_argument("--engine", default="auto", choices=["auto", "torch", "onnx"],
                    help="auto: ONNX Runtime on CPU, PyTorch (bf16) on GPU")
    sv.add_argument("--address", default=None,
                    help="an existing Ray cluster (auto, HOST:PORT); default: a local Ray")
    sv.add_argument("--token", default=None,
                    help=f"bearer token every API call must send (default: ${TOKEN_ENV})")
    sv.add_argument("--ready-timeout", type=positive, default=300.0,
                    help="seconds to wait for the replicas (default: %(default)s)")
    sv.set_defaults(handler=cmd_serve)


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def cmd_serve(args) -> int:
    from gender.errors import UserError
    from gender.io import resolve_model_path
    from serving.options import ServeOptions, check_bind, is_loopback

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < MIN_TOKEN:
        raise UserError(f"--token: must be at least {MIN_TOKEN} characters (e.g. the output "
                        "of: python -c 'import secrets; print(secrets.token_urlsafe())')")
    if not is_loopback(args.host) and not token:
        raise UserError(f"--host {args.host}: listening beyond this machine needs a token "
                        f"(--token or ${TOKEN_ENV}); every API call must then send "
                        "'Authorization: Bearer <token>'")
    options = ServeOptions(model=args.model, replicas=args.replicas,
                           max_replicas=args.max_replicas,
                           cpus_per_replica=args.cpus_per_replica,
                           gpus_per_replica=args.gpus_per_replica,
                           max_batch_size=args.max_batch_size,
                           batch_wait_ms=args.batch_wait_ms, engine=args.engine, token=token)
    # The model's path and the port are checked before Ray and torch are imported.
    resolve_model_path(args.model)
    if args.address is None:
        check_bind(args.host, args.port)
    from serving.run import NotReady, start, stop  # Ray and torch: only now
    stopping = threading.Event()
    # Until Serve is up, Ctrl-C and SIGTERM interrupt the start (its teardown runs);
    # afterwards they end the wait below and the same teardown follows.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        served = start(options, args.host, args.port, args.address, args.ready_timeout)
    except NotReady as e:
        print(f"gender serve: error: {e}", file=sys.stderr)
        return 1
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"ready: {served.url}  (page at /, API at /api/predict, schema at /openapi.json; "
          f"{served.replicas}{', token required' if token else ''}; Ctrl-C stops)", flush=True)
    while not stopping.wait(1.0):
        pass
    print("gender serve: stopping", file=sys.stderr, flush=True)
    stop(served)
    return 0
