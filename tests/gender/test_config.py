import pytest

from gender.config import TrainConfig
from gender.errors import ConfigError


@pytest.mark.parametrize("field,value,rule", [
    ("arch", "vgg15", "arch must be one of vgg11"),
    ("lr", 0.0, "lr must be in (0, 10]"),
    ("lr", float("nan"), "lr must be in (0, 10]"),
    ("lr", "0.1", "lr must be a number"),
    ("width", 4.0, "width must be in [0.0625, 2]"),
    ("image_size", 48, "multiple of 32"),
    ("image_size", 64.5, "image_size must be a whole number"),
    ("dropout", 1.0, "dropout must be in [0, 1)"),
    ("optimizer", "lbfgs", "optimizer must be one of"),
    ("batch_size", 0, "batch_size must be in [1, 4096]"),
    ("augment", 1.5, "augment must be in [0, 1]"),
    ("crop", 0.4, "crop must be in [0.5, 1]"),
    ("ema", 1.0, "ema must be in [0, 1)"),
    ("mixup", -0.1, "mixup must be in [0, 10]"),
    ("seed", -1, "seed must be in [0, 2**32)"),
    ("batch_norm", 1, "batch_norm must be true or false"),
    ("batch_size", 1, "batch_size must be at least 2 with batch norm"),
])
def test_config_rejects_values_that_break_a_rule_and_names_the_rule(field, value, rule):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    assert rule in str(e.value) and e.value.field == field


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


def test_a_batch_of_one_is_fine_without_batch_norm():
    # With batch norm every batch of one would be skipped and an untrained model saved.
    assert TrainConfig(batch_size=1, batch_norm=False).batch_size == 1
