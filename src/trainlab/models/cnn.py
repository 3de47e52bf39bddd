"""A small convolutional net with batch norm for 28x28 (and 32x32) images."""

from __future__ import annotations

from torch import nn

from trainlab.errors import ConfigError

MIN_SIDE = 4  # pixels: two 2x2 max-poolings leave at least one


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three conv stages (width, 2x, 4x channels) with max pooling, then global pooling and a linear head."""

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        width: int = 32,
        dropout: float = 0.0,
    ):
        super().__init__()
        channels, height, image_width = input_shape
        if min(height, image_width) < MIN_SIDE:
            raise ConfigError(
                f"the cnn halves its input twice, so it needs images of at least {MIN_SIDE}x{MIN_SIDE} "
                f"pixels, got {height}x{image_width}; use a larger --image-size"
            )
        self.features = nn.Sequential(
            conv_block(channels, width),
            conv_block(width, width),
            nn.MaxPool2d(2),
            conv_block(width, 2 * width),
            conv_block(2 * width, 2 * width),
            nn.MaxPool2d(2),
            conv_block(2 * width, 4 * width),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * width, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
