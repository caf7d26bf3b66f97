"""Configurations the classifier's tests train."""

from gender.config import TrainConfig

# Learns the synthetic faces well above chance in two epochs at 32 px, on the whole square
# (as the `prep` fixture decodes them).
GOOD = TrainConfig(arch="vgg11", width=0.25, head="gap", image_size=32, crop=1.0, epochs=2,
                   optimizer="adamw", lr=3e-3, batch_size=32, augment=0.3, seed=0)
