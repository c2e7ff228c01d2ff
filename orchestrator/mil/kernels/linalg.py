"""Matrix kernels: ``linear`` (weight is [out, in]), ``matmul`` (numpy broadcasting, optional transposes),
``einsum`` and iOS 18's fused ``scaled_dot_product_attention``."""

from __future__ import annotations

import math

import torch

from orchestrator.mil.kernels.registry import KERNELS, OpCall


@KERNELS.register("linear")
def linear(c: OpCall) -> torch.Tensor:
    bias = c.tensor("bias") if c.has("bias") else None
    return torch.nn.functional.linear(c.tensor("x"), c.tensor("weight"), bias)


@KERNELS.register("matmul")
def matmul(c: OpCall) -> torch.Tensor:
    x, y = c.tensor("x"), c.tensor("y")
    if c.bool("transpose_x") and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if c.bool("transpose_y") and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@KERNELS.register("einsum")
def einsum(c: OpCall) -> torch.Tensor:
    return torch.einsum(c.str("equation"), *c.tensors("values"))


@KERNELS.register("scaled_dot_product_attention")
def scaled_dot_product_attention(c: OpCall) -> torch.Tensor:
    """Materialises the [.., L, S] scores like a non-tiled implementation and declares them as workspace."""
    q, k, v = c.tensor("query"), c.tensor("key"), c.tensor("value")
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    if c.has("attn_mask"):
        mask = c.tensor("attn_mask")
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    c.add_workspace(scores.numel())
    return torch.matmul(torch.softmax(scores, dim=-1), v)
