"""Small real models for MIL tests: an SD-1.5-sized UNet attention block with the project's attention
implementations, and a helper that converts a torch module to an .mlpackage the way the builder does
(torch.export -> coremltools, fixed shapes, fp16 or fp32 compute)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn


class TupleOut(nn.Module):
    """forward(**inputs) -> (output,), so the Core ML output can be named."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.module(hidden_states),)


def attention_block(attention: str, *, dim: int = 320, heads: int = 8, seed: int = 0) -> nn.Module:
    """The self-attention transformer block of SD 1.5's first UNet level (320 channels, 8 heads of 40), with
    ``orchestrator.models.attention``'s processor for ``attention`` installed on its attention layers."""
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.attention_processor import Attention

    from orchestrator.models.attention import MlfarmAttnProcessor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        block = BasicTransformerBlock(dim=dim, num_attention_heads=heads, attention_head_dim=dim // heads)
    for module in block.modules():
        if isinstance(module, Attention):
            module.set_processor(MlfarmAttnProcessor(attention))
    return TupleOut(block.eval())


def convert(module: nn.Module, inputs: Mapping[str, np.ndarray], path: Path, *, precision: str = "fp16",
            target: str = "iOS17", output: str = "out") -> Path:
    import coremltools as ct

    args = tuple(torch.from_numpy(v) for v in inputs.values())
    exported = torch.export.export(module, args).run_decompositions({})
    model = ct.convert(
        exported, inputs=[ct.TensorType(name=k, shape=v.shape, dtype=v.dtype.type) for k, v in inputs.items()],
        outputs=[ct.TensorType(name=output, dtype=np.float32)], minimum_deployment_target=getattr(ct.target, target),
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32, skip_model_load=True)
    model.save(str(path))
    return path


def block_inputs(tokens: int, *, batch: int = 2, dim: int = 320, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"hidden_states": rng.standard_normal((batch, tokens, dim)).astype(np.float32)}
