"""Core ML packages converted with plain coremltools, as a user would bring them (no mlfarm code involved)."""

from __future__ import annotations

from pathlib import Path

import coremltools as ct
import numpy as np
import torch
from torch import nn


class Classifier(nn.Module):
    """A small conv + linear classifier; big enough (> 2048 weights per layer) to be compressed."""

    def __init__(self, channels: int = 32, classes: int = 64) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Linear(channels, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(image))
        x = torch.relu(self.conv2(x))
        return self.head(x.mean(dim=(2, 3)))


class Embedder(nn.Module):
    """Token ids -> pooled embedding: an int32 input."""

    def __init__(self, vocab: int = 100, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.proj = nn.Linear(width, width)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.embed(input_ids).mean(dim=1))


def convert_classifier(path: Path, *, seed: int = 0, flexible: bool = False, channels: int = 32,
                       target: object = None) -> Path:
    """Save a Classifier as ``path`` (an .mlpackage), fp16, iOS 16 opset unless ``target`` says otherwise."""
    torch.manual_seed(seed)
    model = Classifier(channels).eval()
    traced = torch.jit.trace(model, torch.randn(1, 3, 16, 16))
    shape: object = (1, 3, 16, 16)
    if flexible:
        shape = ct.Shape(shape=(1, 3, ct.RangeDim(8, 64, default=16), ct.RangeDim(8, 64, default=16)))
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="image", shape=shape)],
                         outputs=[ct.TensorType(name="logits")], convert_to="mlprogram",
                         minimum_deployment_target=target or ct.target.iOS16, skip_model_load=True)
    mlmodel.save(str(path))
    return path


def convert_embedder(path: Path, *, seed: int = 1) -> Path:
    torch.manual_seed(seed)
    model = Embedder().eval()
    traced = torch.jit.trace(model, torch.zeros(1, 8, dtype=torch.int64))
    mlmodel = ct.convert(traced, inputs=[ct.TensorType(name="input_ids", shape=(1, 8), dtype=np.int32)],
                         outputs=[ct.TensorType(name="embedding")], convert_to="mlprogram",
                         minimum_deployment_target=ct.target.iOS16, skip_model_load=True)
    mlmodel.save(str(path))
    return path
