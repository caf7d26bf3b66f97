"""The one training loop on real synthetic faces: it learns, resumes exactly, and
stops a diverging configuration."""

import numpy as np
import pytest
import torch

from gender.engine import Diverged, Trainer
from gender.errors import ConfigError
from tests.gender.configs import GOOD

CPU = torch.device("cpu")


def test_two_epochs_on_synthetic_32px_learn_well_above_chance(prep):
    trainer = Trainer(GOOD, prep.data, CPU)
    history = trainer.fit()
    assert len(history) == 2
    assert history[-1]["val_f1"] > 0.7, history  # chance is 0.5


def test_every_epoch_reports_quality_and_timing_metrics(prep):
    seen = []
    Trainer(GOOD.replace(epochs=1), prep.data, CPU).fit(lambda e, m: seen.append(m))
    keys = {"train_loss", "val_loss", "val_accuracy", "val_precision", "val_recall", "val_f1",
            "val_auc", "epoch_seconds", "images_per_s", "latency_ms_p50"}
    assert keys <= set(seen[0])
    assert all(np.isfinite(seen[0][k]) for k in keys)


@pytest.mark.parametrize("ema, mixup", [(0.0, 0.0), (0.9, 0.2)])
def test_resuming_from_a_checkpoint_continues_exactly(prep, ema, mixup):
    cfg = GOOD.replace(epochs=2, width=0.125, ema=ema, mixup=mixup)
    straight = Trainer(cfg, prep.data, CPU)
    straight.fit()
    first = Trainer(cfg, prep.data, CPU)
    first.run_epoch()
    state = first.state_dict()
    resumed = Trainer(cfg, prep.data, CPU)
    resumed.load_state_dict(state)
    assert resumed.epoch == 1
    resumed.fit()
    for (k, a), b in zip(straight.eval_model.state_dict().items(),
                         resumed.eval_model.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k


def test_ema_evaluates_and_exports_the_averaged_weights(prep, tmp_path):
    from gender.export import load_model
    from gender.pipeline import finish_run

    t = Trainer(GOOD.replace(epochs=1, width=0.125, ema=0.9), prep.data, CPU)
    t.fit()
    raw, avg = t.model.state_dict(), t.eval_model.state_dict()
    assert t.eval_model is not t.model
    assert not torch.equal(raw["features.0.weight"], avg["features.0.weight"])
    finish_run(t, prep, tmp_path, train_seconds=1.0)
    loaded = load_model(tmp_path / "model.pt")
    assert loaded.config.ema == 0.9
    assert torch.equal(loaded.members[0].state_dict()["features.0.weight"],
                       avg["features.0.weight"])


def test_a_nan_loss_raises_diverged(prep):
    cfg = GOOD.replace(batch_norm=False, head="classic", optimizer="sgd", lr=10.0, momentum=0.99,
                       epochs=3, augment=0.0)
    with pytest.raises(Diverged):
        Trainer(cfg, prep.data, CPU).fit()


def test_a_config_refuses_data_decoded_at_another_view(prep):
    # The model would be shown other pictures in use than in training.
    with pytest.raises(ConfigError, match="decoded at 32 px, crop 1; the config asks for "
                                          "32 px, crop 0.7"):
        Trainer(GOOD.replace(crop=0.7), prep.data, CPU)


def test_train_split_can_be_train_plus_val(prep):
    t = Trainer(GOOD, prep.data, CPU, train_split=("train", "val"), eval_split=None)
    assert len(t.train_idx) == len(prep.data.splits["train"]) + len(prep.data.splits["val"])
