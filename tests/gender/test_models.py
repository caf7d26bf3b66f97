"""The model contract, for every architecture: shape, finiteness, gradients; and
state-dict compatibility with torchvision so ImageNet weights load."""

import pytest
import torch
from torchvision.models import vgg16

from gender.config import ARCHS, TrainConfig
from gender.errors import UserError
from gender.models import build_model

VARIANTS = [(a, bn, head) for a in ARCHS for bn in (False, True) for head in ("gap", "classic")]


@pytest.mark.parametrize("arch,bn,head", VARIANTS)
def test_model_contract_shape_finite_and_every_parameter_gets_a_gradient(arch, bn, head):
    torch.manual_seed(0)
    cfg = TrainConfig(arch=arch, batch_norm=bn, head=head, width=0.125, image_size=32)
    model = build_model(cfg)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2,)
    assert torch.isfinite(out).all()
    out.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("size", [32, 64, 96])
def test_model_accepts_every_allowed_image_size(size):
    model = build_model(TrainConfig(width=0.125, image_size=size)).eval()
    assert model(torch.rand(1, 3, size, size)).shape == (1,)


def test_width_one_classic_matches_torchvision_vgg16_state_dict_but_the_last_layer():
    ours = build_model(TrainConfig(arch="vgg16", batch_norm=False, width=1.0, head="classic"))
    ref = vgg16(weights=None).state_dict()
    mine = ours.state_dict()
    assert set(mine) == set(ref)
    for k, v in ref.items():
        if k.startswith("classifier.6"):
            assert mine[k].shape[0] == 1  # one logit instead of 1000 classes
        else:
            assert mine[k].shape == v.shape, k


def test_pretrained_file_loads_every_layer_except_the_output(tmp_path):
    ref = vgg16(weights=None)
    path = tmp_path / "vgg16-imagenet.pth"
    torch.save(ref.state_dict(), path)
    cfg = TrainConfig(arch="vgg16", batch_norm=False, width=1.0, head="classic",
                      pretrained=str(path))
    model = build_model(cfg)
    assert torch.equal(model.features[0].weight, ref.features[0].weight)
    assert torch.equal(model.classifier[3].weight, ref.classifier[3].weight)


def test_pretrained_imagenet_reads_torchvision_weights_cache(tmp_path, monkeypatch):
    """The torchvision weights API path, fed from a cache file the test writes."""
    from torchvision.models import VGG11_Weights, vgg11

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ref = vgg11(weights=None)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref.state_dict(), cache / VGG11_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    cfg = TrainConfig(arch="vgg11", batch_norm=False, width=1.0, head="classic",
                      pretrained="imagenet")
    model = build_model(cfg)
    assert torch.equal(model.features[0].weight, ref.features[0].weight)


def test_pretrained_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(vgg16(weights=None).state_dict(), path)
    cfg = TrainConfig(arch="vgg11", batch_norm=False, width=1.0, head="classic",
                      pretrained=str(path))
    with pytest.raises(UserError, match="do not match vgg11"):
        build_model(cfg)
