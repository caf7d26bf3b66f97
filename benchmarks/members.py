"""What else the export could average, read on a finished experiment's validation split.

The export averages the retrained best with trial members at the best trial's image size
and crop, each picture and its mirror image (`tuning.retrain`). This asks what two more
recipes would give, with the top trials' own best checkpoints (trained on the training
split only, so their validation predictions are fair to compare):

- members at another image size: every average of 2-4 of the top trials whatever their
  size, each fed its own decoding (and, for a smaller member, the larger picture
  area-averaged down to its size, as one graph taking one picture would feed it);
- more crops at test time: each trial on its own crop and on one other crop, averaged.

`python -m benchmarks --only members --experiment results/NAME` (skipped without it).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from benchmarks.common import Options, fmt_table

__all__ = ["run", "area_resize"]

TOP = 7  # trials read (the export compares the top 3)
CROPS = (0.6, 0.65, 0.75, 0.8)  # second crops tried beside each trial's own


def area_resize(images_u8: np.ndarray, size: int) -> np.ndarray:
    """uint8 N x 3 x S x S -> N x 3 x size x size, each output pixel the mean of the input
    pixels it covers (fixed matrices: what an exported graph can do)."""
    import torch

    from gender.export import _pool_matrix

    x = torch.from_numpy(np.ascontiguousarray(images_u8)).float()
    rows = _pool_matrix(x.shape[-2], size)
    cols = _pool_matrix(x.shape[-1], size).T
    return torch.matmul(torch.matmul(rows, x), cols).round().clamp(0, 255).to(torch.uint8).numpy()


def run(opts: Options) -> dict:
    if not opts.experiment:
        print("members: needs --experiment results/NAME (a finished gender tune)")
        return {"skipped": "no --experiment"}
    from gender.config import TrainConfig
    from gender.data.tensors import TensorData, load_arrays
    from gender.engine import Trainer
    from gender.ensemble import combine, view_probs
    from gender.metrics import binary_metrics, calibration
    from gender.pipeline import prepare
    from tuning.experiment import search_results
    from tuning.retrain import retrain_plan
    from tuning.settings import TuneSettings

    exp = Path(opts.experiment)
    settings = TuneSettings.load(exp)
    plan = retrain_plan(search_results(settings), settings, limit=TOP, same_view=False)
    default = TrainConfig()  # its view is decoded in any default search: cached
    prep = prepare(settings.data, default.image_size, split_seed=settings.split_seed,
                   splits_csv=exp / "splits.csv", crop=default.crop)
    val, labels = prep.data.splits["val"], prep.data.labels.numpy()
    y = labels[val].astype(int)
    views: dict[tuple[int, float], TensorData] = {}

    def data(size: int, crop: float) -> TensorData:
        if (size, crop) not in views:
            views[(size, crop)] = TensorData.from_arrays(
                load_arrays(prep.index, size, crop=crop), labels, prep.data.splits, crop)
        return views[(size, crop)]

    def scores(p: np.ndarray) -> dict:
        return {"accuracy": binary_metrics(y, p)["accuracy"], "nll": calibration(y, p)["nll"]}

    members = []
    for trial in plan:
        state = trial["state"]
        cfg = TrainConfig.from_saved(state["config"])
        trainer = Trainer(cfg, data(*cfg.input_view), "cpu", train_split="train", eval_split=None)
        trainer.load_state_dict(state)
        model = trainer.eval_model
        own = view_probs(model, data(*cfg.input_view).images[val].numpy())
        crops = {c: scores(np.concatenate([own, view_probs(
            model, data(cfg.image_size, c).images[val].numpy())]).mean(axis=0)) for c in CROPS}
        members.append({"trial_id": trial["trial_id"], "model": cfg.model_name,
                        "image_size": cfg.image_size, "crop": cfg.crop, "width": cfg.width,
                        "epochs": int(state["epoch"]), "val_f1": trial["val_f1"],
                        "model_obj": model, "views": own,
                        "plain": scores(own[0]), "flip": scores(own.mean(axis=0)),
                        "with_crop": crops})
    largest = max(m["image_size"] for m in members)
    for m in members:  # a smaller member fed the larger picture, area-averaged down
        if m["image_size"] < largest:
            big = data(largest, m["crop"]).images[val].numpy()
            m["from_larger"] = scores(view_probs(m["model_obj"], area_resize(
                big, m["image_size"])).mean(axis=0))
    combos = []
    for k in range(2, min(4, len(members)) + 1):
        for c in itertools.combinations(range(len(members)), k):
            p = combine([members[i]["views"] for i in c], k, tta=True)
            combos.append({"members": [members[i]["trial_id"] for i in c],
                           "sizes": sorted({members[i]["image_size"] for i in c}), **scores(p)})
    best_alone = members[0]["flip"]["accuracy"]
    print(fmt_table([{**{k: m[k] for k in ("trial_id", "model", "image_size", "epochs", "val_f1")},
                      "plain": m["plain"]["accuracy"], "flip": m["flip"]["accuracy"],
                      **{f"+{c}": m["with_crop"][c]["accuracy"] for c in CROPS},
                      "from_larger": m.get("from_larger", {}).get("accuracy")}
                     for m in members],
                    {"trial_id": "trial", "model": "model", "image_size": "px",
                     "epochs": "epochs", "val_f1": "val F1 (tuning)", "plain": "acc",
                     "flip": "acc + flip", **{f"+{c}": f"+ crop {c}" for c in CROPS},
                     "from_larger": f"acc + flip from {largest} px"}))
    for k in range(2, min(4, len(members)) + 1):
        top = max((c for c in combos if len(c["members"]) == k), key=lambda c: c["accuracy"])
        print(f"members: best average of {k} (with the flip): {top['accuracy']:.4f} "
              f"({', '.join(top['members'])}; sizes {top['sizes']}) against the best trial "
              f"alone {best_alone:.4f}")
    for m in members:
        m.pop("model_obj"), m.pop("views")
    return {"experiment": str(exp), "n_val": int(len(y)), "members": members,
            "averages": combos, "best_alone_with_flip": best_alone,
            "averages_above_best_alone": sum(c["accuracy"] > best_alone for c in combos)}
