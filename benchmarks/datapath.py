"""Data path: images decoded once into a uint8 tensor (what every run and trial reads)
against a plain torch Dataset + DataLoader that decodes every file with PIL every epoch.

Both feed the one training loop (`gender.engine.train_one_epoch`), same model and batch
size: the DataLoader's batches are handed to it in exactly the order it asks for. Inside
a pass, hooks time the forward/backward/step span (forward pre-hook to optimiser step
post-hook) apart from the batch fetch (indexing the tensor, or waiting for the loader);
the rest (augmentation, normalisation, bookkeeping) is "other".
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from benchmarks.common import REAL_DATA, Options, data_dir, fmt_table, set_threads
from gender.config import TrainConfig
from gender.data.tensors import TensorData
from gender.engine import Trainer, train_one_epoch
from gender.images import decode_image
from gender.pipeline import prepare

__all__ = ["run", "CONFIG"]

# 32 px: the quick search space's size, where reading images weighs most against compute.
CONFIG = TrainConfig(arch="vgg11", batch_norm=True, width=0.25, head="gap", image_size=32,
                     batch_size=64, epochs=10, seed=0)
# Variants take turns, a chunk of the training images each, so a change in the machine's
# load (it is shared) hits all alike; the figures are medians over the turns.
FULL = {"rounds": 6, "chunk": 1024, "workers": (0, 2)}
QUICK = {"rounds": 2, "chunk": 384, "workers": (0,)}


class _TensorImages:
    """`data.images` as the loop sees it: the decoded tensor, each fetch timed."""

    def __init__(self, images: torch.Tensor):
        self.images, self.seconds = images, 0.0

    @property
    def shape(self):
        return self.images.shape

    def start_epoch(self, batches) -> None:
        pass

    def __getitem__(self, rows):
        t0 = time.perf_counter()
        out = self.images[rows]
        self.seconds += time.perf_counter() - t0
        return out


class _Files(Dataset):
    """One image file per item, decoded with PIL as training would (`decode_image`)."""

    def __init__(self, paths: list[str], size: int, crop: float):
        self.paths, self.size, self.crop = paths, size, crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return i, torch.from_numpy(decode_image(self.paths[i], self.size, self.crop))


class _LoaderImages(_TensorImages):
    """`data.images` served by a DataLoader over the files: this epoch's batches, in the
    loop's order; the time spent waiting for each batch is the fetch."""

    def __init__(self, files: _Files, workers: int):
        self.files, self.workers, self.seconds, self.it = files, workers, 0.0, None

    @property
    def shape(self):
        return (len(self.files), 3, self.files.size, self.files.size)

    def start_epoch(self, batches) -> None:
        self.it = iter(DataLoader(self.files, batch_sampler=[b.tolist() for b in batches],
                                  num_workers=self.workers))

    def __getitem__(self, rows):
        t0 = time.perf_counter()
        got, images = next(self.it)
        self.seconds += time.perf_counter() - t0
        if not np.array_equal(got.numpy(), rows):
            raise RuntimeError("train_one_epoch's batch order changed: update "
                               "benchmarks/datapath.py's replay of it")
        return images


def _batches(trainer: Trainer, idx: np.ndarray) -> list[np.ndarray]:
    """The batches `train_one_epoch` is about to draw from `idx`: its shuffle replayed on a
    copy of the trainer's generator (and its rule for a last batch of one under batch norm)."""
    gen = torch.Generator().manual_seed(0)
    gen.set_state(trainer.gen.get_state())
    cfg = trainer.cfg
    order = idx[torch.randperm(len(idx), generator=gen).numpy()]
    out = [order[s:s + cfg.batch_size] for s in range(0, len(order), cfg.batch_size)]
    return [b for b in out if not (len(b) < 2 and cfg.batch_norm)]


class _StepClock:
    """Seconds from each training forward's start to its optimiser step's end."""

    def __init__(self, model, opt):
        self.seconds, self._t0 = 0.0, 0.0
        model.register_forward_pre_hook(self._start)
        opt.register_step_post_hook(self._stop)

    def _start(self, module, args) -> None:
        self._t0 = time.perf_counter()

    def _stop(self, opt, args, kwargs) -> None:
        self.seconds += time.perf_counter() - self._t0


def _pass(trainer: Trainer, images, clock: _StepClock, idx: np.ndarray) -> dict:
    """One pass of the training loop over `idx`, its time split into fetch/step/other."""
    data = TensorData(images, trainer.data.labels, trainer.data.splits)
    images.start_epoch(_batches(trainer, idx))
    images.seconds = clock.seconds = 0.0
    m = train_one_epoch(trainer.model, trainer.opt, trainer.sched, data, idx,
                        trainer.cfg, trainer.device, trainer.gen, trainer.pos_weight)
    secs = m["train_seconds"]
    return {"images_per_s": m["images_per_s"], "epoch_seconds": secs,
            "fetch_seconds": images.seconds, "step_seconds": clock.seconds,
            "other_seconds": secs - images.seconds - clock.seconds}


def run(opts: Options) -> dict:
    data = data_dir(opts, "datapath")
    if data is None:
        return {"skipped": f"--real: {REAL_DATA} is absent"}
    p = QUICK if opts.quick else FULL
    cfg = CONFIG
    threads = set_threads()
    prep = prepare(data, cfg.image_size, crop=cfg.crop)
    paths = [str(prep.index.path(s)) for s in prep.index.samples]  # row i <-> images[i]
    trainer = Trainer(cfg, prep.data, torch.device("cpu"))
    clock = _StepClock(trainer.model, trainer.opt)
    n_train = len(trainer.train_idx)
    print(f"datapath: {cfg.model_name} width {cfg.width} {cfg.image_size} px batch "
          f"{cfg.batch_size}, {threads} threads; {p['rounds']} rounds, each variant in turn "
          f"training on the same {min(p['chunk'], n_train)} of the {n_train} training images; "
          f"data {data}", flush=True)
    warm = TensorData(prep.data.images, prep.data.labels, prep.data.splits, prep.data.crop)
    train_one_epoch(trainer.model, trainer.opt, trainer.sched, warm, trainer.train_idx[:256],
                    cfg, trainer.device, trainer.gen, trainer.pos_weight)
    variants = {"tensors": ("uint8 tensor, decoded once", _TensorImages(prep.data.images))}
    for w in p["workers"]:
        variants[f"pil-{w}"] = (f"PIL every epoch, DataLoader {w} workers",
                                _LoaderImages(_Files(paths, cfg.image_size, cfg.crop), w))
    turns = {name: [] for name in variants}
    rng = np.random.default_rng(0)
    for _ in range(p["rounds"]):
        chunk = rng.choice(trainer.train_idx, size=min(p["chunk"], n_train), replace=False)
        for name, (_, images) in variants.items():
            turns[name].append(_pass(trainer, images, clock, np.sort(chunk)))
    rows = []
    for name, (label, _) in variants.items():
        row = {k: float(np.median([t[k] for t in turns[name]])) for k in turns[name][0]}
        total = {k: sum(t[k] for t in turns[name]) for k in turns[name][0]}
        row.update(variant=name, label=label, turns=turns[name],
                   outside_share=1 - total["step_seconds"] / total["epoch_seconds"],
                   fetch_share=total["fetch_seconds"] / total["epoch_seconds"],
                   fetch_ms_per_image=1e3 * total["fetch_seconds"]
                   / (len(turns[name]) * min(p["chunk"], n_train)))
        rows.append(row)
    for r in rows:
        r["x_tensors"] = r["images_per_s"] / rows[0]["images_per_s"]
    print(fmt_table(rows, {"label": "data path", "images_per_s": "train images/s (median)",
                           "x_tensors": "x tensors", "fetch_ms_per_image": "fetch ms/image",
                           "fetch_share": "fetch share",
                           "outside_share": "share outside fwd/bwd/step"}))
    return {"config": cfg.to_dict(), "threads": threads, "data": str(data),
            "n_train": int(n_train), "params": p, "variants": rows}
