"""GPU: trials per GPU (1, 2, 4 sharing each GPU through Ray Tune's fractional
`gpus_per_trial`), bf16 autocast against fp32, channels_last against contiguous.

Only with CUDA; otherwise the JSON says {"skipped": "no CUDA"}. The precision and memory
format comparisons run the one training loop in-process with the Trainer's two CUDA
defaults (`bf16`, `channels_last`) switched off in turn.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, trial_frames, tune_once
from gender.config import TrainConfig
from gender.engine import Trainer
from gender.pipeline import prepare
from tuning.settings import TuneSettings
from tuning.space import SEARCHABLE, validate_space

__all__ = ["run", "CONFIG"]

CONFIG = TrainConfig(arch="vgg16", batch_norm=True, width=0.5, head="gap", image_size=128,
                     batch_size=128, seed=0)
FULL = {"epochs": 4, "sharing": (1, 2, 4)}
QUICK = {"epochs": 2, "sharing": (1, 2)}


def _mean_after_first(values) -> float:
    values = list(values)
    return float(np.mean(values[1:] if len(values) > 1 else values))


def trials_per_gpu(cfg: TrainConfig, data, root, sharing: tuple[int, ...]) -> list[dict]:
    """k trials on each GPU at once (gpus_per_trial 1/k): aggregate training images/s."""
    import ray

    from tuning.cluster import start_ray

    start_ray(None, quiet=True)
    n_gpu = max(1, int(ray.cluster_resources().get("GPU", 0)))
    space = validate_space({k: v for k, v in cfg.to_dict().items() if k in SEARCHABLE})
    rows = []
    for k in sharing:
        settings = TuneSettings(data=str(data), name=f"share-{k}", results=str(root.resolve()),
                                num_samples=k * n_gpu, max_concurrent=k * n_gpu,
                                max_epochs=cfg.epochs, scheduler="fifo", gpus_per_trial=1 / k,
                                seed=cfg.seed, space=space, retrain=False)
        tune_once(settings)
        df = trial_frames(settings.exp_dir)
        per_trial = [_mean_after_first(g.sort_values("training_iteration")["images_per_s"])
                     for _, g in df.groupby("trial")]
        rows.append({"trials_per_gpu": k, "gpus_per_trial": 1 / k, "trials": len(per_trial),
                     "images_per_s_per_trial": float(np.mean(per_trial)) if per_trial else 0.0,
                     "images_per_s_per_gpu": float(np.sum(per_trial)) / n_gpu})
    for r in rows:
        r["x_one_trial"] = r["images_per_s_per_gpu"] / rows[0]["images_per_s_per_gpu"]
    return rows


def _variant(cfg: TrainConfig, prep, device, bf16: bool, channels_last: bool) -> dict:
    trainer = Trainer(cfg, prep.data, device, eval_split=None, bf16=bf16,
                      channels_last=channels_last)
    history = trainer.fit()
    return {"images_per_s": _mean_after_first(h["images_per_s"] for h in history)}


def run(opts: Options) -> dict:
    if not torch.cuda.is_available():
        print("gpu: no CUDA on this machine; skipped")
        return {"skipped": "no CUDA"}
    data = data_dir(opts, "gpu")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    cfg = CONFIG.replace(epochs=p["epochs"])
    print(f"gpu: {torch.cuda.get_device_name(0)}; {cfg.model_name} width {cfg.width} "
          f"{cfg.image_size} px batch {cfg.batch_size}, {cfg.epochs} epochs a run", flush=True)
    sharing = trials_per_gpu(cfg, data, opts.runs / "gpu", p["sharing"])
    print(fmt_table(sharing, {"trials_per_gpu": "trials per GPU",
                              "images_per_s_per_trial": "images/s a trial",
                              "images_per_s_per_gpu": "images/s per GPU",
                              "x_one_trial": "x 1 trial"}))
    prep = prepare(data, cfg.image_size, crop=cfg.crop)
    device = torch.device("cuda", 0)
    variants = []
    for label, bf16, cl in (("bf16 + channels_last (default)", True, True),
                            ("fp32 + channels_last", False, True),
                            ("bf16 + contiguous", True, False)):
        variants.append({"variant": label, "bf16": bf16, "channels_last": cl,
                         **_variant(cfg, prep, device, bf16, cl)})
    for v in variants:
        v["x_default"] = v["images_per_s"] / variants[0]["images_per_s"]
    print(fmt_table(variants, {"variant": "variant", "images_per_s": "train images/s",
                               "x_default": "x default"}))
    return {"device": torch.cuda.get_device_name(0), "config": cfg.to_dict(),
            "sharing": sharing, "precision_and_layout": variants}
