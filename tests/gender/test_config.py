import pytest

from gender.config import TrainConfig
from gender.errors import ConfigError


@pytest.mark.parametrize("field,value,rule", [
    ("arch", "vgg15", "arch in"),
    ("lr", 0.0, "0 < lr"),
    ("lr", float("nan"), "0 < lr"),
    ("width", 4.0, "width <= 2"),
    ("image_size", 48, "multiple of 32"),
    ("dropout", 1.0, "dropout < 1"),
    ("optimizer", "lbfgs", "optimizer in"),
    ("batch_size", 0, "1 <= batch_size"),
    ("augment", 1.5, "augment <= 1"),
    ("ema", 1.0, "ema < 1"),
    ("mixup", -0.1, "0 <= mixup"),
])
def test_config_rejects_values_that_break_a_rule_and_names_the_rule(field, value, rule):
    with pytest.raises(ConfigError, match=rule.replace("(", r"\(")):
        TrainConfig(**{field: value})


def test_config_round_trips_through_a_plain_dict():
    cfg = TrainConfig(arch="vgg16", lr=3e-4, optimizer="rmsprop", alpha=0.9)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_config_from_dict_refuses_unknown_fields():
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig.from_dict({"lr": 1e-3, "learning_rate": 1e-3})


def test_config_from_dict_turns_numpy_scalars_into_python_values():
    import numpy as np

    cfg = TrainConfig.from_dict({"lr": np.float64(1e-3), "batch_size": np.int64(32)})
    assert type(cfg.lr) is float and type(cfg.batch_size) is int


def test_pretrained_needs_the_torchvision_shape():
    with pytest.raises(ConfigError, match="pretrained"):
        TrainConfig(pretrained="imagenet", width=0.5)
