"""The CUDA path on a real GPU: training under bf16 autocast with channels_last weights,
and a model trained there exported and read back alike by the GPU, the CPU and ONNX
Runtime. Skipped where torch sees no GPU (CI has none); the README's GPU section says
where these last ran."""

import numpy as np
import pytest
import torch

from gender.engine import Trainer
from gender.pipeline import finish_run
from gender.predict import Predictor
from tests.gender.configs import GOOD

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA on this machine")

CUDA = torch.device("cuda", 0)


def test_training_on_cuda_runs_bf16_on_channels_last_fp32_weights_and_learns(prep):
    t = Trainer(GOOD, prep.data, CUDA)
    assert (t.runtime.bf16, t.runtime.channels_last) == (True, True)
    w = t.model.features[0].weight
    assert w.is_cuda and w.dtype == torch.float32  # autocast keeps fp32 master weights
    assert w.is_contiguous(memory_format=torch.channels_last)
    x = t.runtime.to_input(prep.data.images[:4], 0.0, t.gen)
    with t.runtime.autocast():
        assert t.model(x).dtype == torch.bfloat16
    history = t.fit()
    assert history[-1]["val_f1"] > 0.7, history  # chance is 0.5


def test_a_model_trained_on_cuda_predicts_alike_on_the_gpu_the_cpu_and_onnx(prep, tmp_path):
    t = Trainer(GOOD.replace(epochs=1), prep.data, CUDA)
    t.fit()
    metrics = finish_run(t, prep, tmp_path, train_seconds=1.0)
    idx = prep.data.splits["test"]
    images, y = prep.data.images[idx].numpy(), prep.data.labels[idx].numpy()
    model = tmp_path / "model.pt"
    gpu = Predictor(model, "cuda", "torch").predict_arrays(images)
    cpu = Predictor(model, "cpu", "torch").predict_arrays(images)
    onnx = Predictor(model, "cpu", "onnx").predict_arrays(images)
    assert np.abs(gpu - cpu).max() < 0.05  # bf16 autocast against fp32
    assert np.mean((gpu >= 0.5) == (cpu >= 0.5)) >= 0.98
    assert np.abs(onnx - cpu).max() < 1e-4
    # The test figures were taken on the GPU, as the trainer ran.
    assert metrics["accuracy"] == pytest.approx(np.mean((gpu >= 0.5) == y), abs=0.01)
