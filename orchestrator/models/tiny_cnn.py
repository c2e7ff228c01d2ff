"""``builtin:tiny-cnn``: a MobileNetV3-style CNN (depthwise conv, squeeze-excite, hardswish), seeded weights.

Small enough for CI (about 40 k parameters) and built from the ops that mobile vision models are made of, so
a release of it exercises the same conversion, compression and executor paths as a real classifier.
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(dim=(2, 3), keepdim=True)
        return x * nn.functional.hardsigmoid(self.expand(torch.relu(self.reduce(scale))))


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> squeeze-excite -> 1x1 project, hardswish between, residual when shapes match."""

    def __init__(self, channels: int, expanded: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(channels, expanded, 1, bias=False)
        self.depthwise = nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded, bias=False)
        self.se = SqueezeExcite(expanded, expanded // 4)
        self.project = nn.Conv2d(expanded, channels, 1, bias=False)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.expand(x))
        y = self.se(self.act(self.depthwise(y)))
        return x + self.project(y)


class TinyCnn(nn.Module):
    def __init__(self, classes: int = 100, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(InvertedResidual(width, 4 * width), InvertedResidual(width, 4 * width))
        self.head = nn.Linear(width, classes)
        self.act = nn.Hardswish()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.act(self.stem(image)))
        return self.head(x.mean(dim=(2, 3)))


def build(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TinyCnn().eval()
