"""`model.onnx`: the whole `Deployable` (members, flip, temperature, normalisation) as one
graph, equal to eager PyTorch, and never used when it belongs to another `model.pt`."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gender.export import export_onnx, load_model, onnx_session, save_model
from gender.images import decode_image
from gender.predict import Predictor

ATOL = 1e-4  # max |P_onnx(male) - P_torch(male)|


def _synthetic(data: Path, size: int, n: int = 48) -> np.ndarray:
    files = sorted((data / "img_align_celeba").iterdir())[:n]
    return np.stack([decode_image(f, size) for f in files])


def _real(celeba: Path, size: int, n: int = 64) -> np.ndarray:
    names = pd.read_csv(celeba / "labels.csv")["Image"].head(n)
    return np.stack([decode_image(celeba / "Images" / name, size) for name in names])


@pytest.fixture(scope="module")
def ensemble(tiny_model, tmp_path_factory) -> Path:
    """Two members (the trained one and a perturbed copy), flip TTA, temperature 1.7."""
    loaded = load_model(tiny_model)
    first = loaded.members[0]
    second = type(first)(loaded.config)
    second.load_state_dict(first.state_dict())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in second.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    path = tmp_path_factory.mktemp("ensemble") / "model.pt"
    save_model(path, [first, second.eval()], [loaded.config, loaded.config], loaded.metrics,
               tta_flip=True, temperature=1.7)
    export_onnx(load_model(path))
    return path.parent


def _max_diff(folder: Path, images: np.ndarray) -> float:
    eager = Predictor(folder, engine="torch").predict_arrays(images)
    onnx = Predictor(folder, engine="onnx").predict_arrays(images)
    assert eager.std() > 0  # the images are told apart: not a constant output
    return float(np.abs(eager - onnx).max())


def test_finish_run_writes_model_onnx_beside_model_pt(tiny_model):
    assert (tiny_model / "model.onnx").is_file()
    sess = onnx_session(load_model(tiny_model))
    assert [i.name for i in sess.get_inputs()] == ["images"]
    assert sess.get_inputs()[0].type == "tensor(uint8)"


@pytest.mark.parametrize("which", ["single", "ensemble"])
def test_onnx_equals_eager_pytorch_on_synthetic_faces(which, tiny_model, ensemble, synth_data):
    folder = tiny_model if which == "single" else ensemble
    assert _max_diff(folder, _synthetic(synth_data, 32)) <= ATOL


@pytest.mark.parametrize("which", ["single", "ensemble"])
def test_onnx_equals_eager_pytorch_on_real_faces(which, tiny_model, ensemble, celeba):
    folder = tiny_model if which == "single" else ensemble
    assert _max_diff(folder, _real(celeba, 32)) <= ATOL


def test_the_ensemble_graph_holds_flip_and_temperature(ensemble, synth_data):
    """The graph is the whole recipe: without flip or temperature the numbers move."""
    images = _synthetic(synth_data, 32, 16)
    onnx = Predictor(ensemble, engine="onnx").predict_arrays(images)
    loaded = load_model(ensemble)
    loaded.module.tta_flip, loaded.module.temperature = False, 1.0
    plain = Predictor(loaded, engine="torch").predict_arrays(images)
    assert np.abs(onnx - plain).max() > 10 * ATOL


def test_a_stale_model_onnx_is_not_used(tiny_model, ensemble, tmp_path, synth_data):
    """model.onnx of another model.pt (here: the single model's graph beside the ensemble)
    is ignored: the session comes from the model.pt itself."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.pt").write_bytes((ensemble / "model.pt").read_bytes())
    (folder / "model.onnx").write_bytes((tiny_model / "model.onnx").read_bytes())
    images = _synthetic(synth_data, 32, 16)
    want = Predictor(ensemble, engine="onnx").predict_arrays(images)
    assert np.abs(Predictor(folder, engine="onnx").predict_arrays(images) - want).max() == 0


@pytest.mark.parametrize("size", [32, 64, 96])
def test_a_classic_head_exports_at_sizes_whose_maps_do_not_divide_its_7x7_pool(size, tmp_path):
    # Its feature map is 1, 2 or 3 pixels wide here: the exporter's adaptive pooling
    # refuses those, so the graph pools with fixed matrices; the answers must not move.
    from gender.config import TrainConfig
    from gender.models import build_model

    cfg = TrainConfig(arch="vgg11", batch_norm=True, width=0.125, head="classic",
                      image_size=size, crop=1.0)
    torch.manual_seed(0)
    gap = TrainConfig(**{**cfg.to_dict(), "head": "gap"})
    models = [build_model(cfg).eval(), build_model(gap).eval()]
    save_model(tmp_path / "model.pt", models, [cfg, gap], tta_flip=True)
    export_onnx(load_model(tmp_path / "model.pt"))
    images = np.random.default_rng(0).integers(0, 256, (16, 3, size, size), dtype=np.uint8)
    assert _max_diff(tmp_path, images) < ATOL
