"""Normalisation kernels: ``layer_norm`` (any axes), ``instance_norm`` / ``batch_norm`` (channel axis 1),
``l2_norm`` (over the last three dims, leading dims are batch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from orchestrator.mil.kernels.registry import KERNELS, OpCall, dims


@KERNELS.register("layer_norm")
def layer_norm(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    rank = x.dim()
    axes = sorted(dims(c.ints("axes"), rank))
    eps = c.float("epsilon", 1e-5)
    gamma = c.tensor("gamma") if c.has("gamma") else None
    beta = c.tensor("beta") if c.has("beta") else None
    if axes == list(range(rank - len(axes), rank)):  # trailing axes: torch's fused kernel
        shape = list(x.shape[rank - len(axes):])
        g = gamma.reshape(shape) if gamma is not None else None
        b = beta.reshape(shape) if beta is not None else None
        return F.layer_norm(x, shape, g, b, eps)
    mean = x.mean(dim=axes, keepdim=True)
    var = (x - mean).square().mean(dim=axes, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    bshape = [x.shape[i] if i in axes else 1 for i in range(rank)]
    if gamma is not None:
        y = y * gamma.reshape(bshape)
    if beta is not None:
        y = y + beta.reshape(bshape)
    return y


@KERNELS.register("instance_norm")
def instance_norm(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    gamma = c.tensor("gamma") if c.has("gamma") else None
    beta = c.tensor("beta") if c.has("beta") else None
    return F.instance_norm(x, weight=gamma, bias=beta, eps=c.float("epsilon", 1e-5))


@KERNELS.register("batch_norm")
def batch_norm(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    gamma = c.tensor("gamma") if c.has("gamma") else None
    beta = c.tensor("beta") if c.has("beta") else None
    return F.batch_norm(x, c.tensor("mean"), c.tensor("variance"), gamma, beta, training=False,
                        eps=c.float("epsilon", 1e-5))


@KERNELS.register("l2_norm")
def l2_norm(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    flat = x.reshape(-1, x.shape[-3] * x.shape[-2] * x.shape[-1]) if x.dim() > 3 else x.reshape(1, -1)
    norm = torch.sqrt(flat.square().sum(dim=1, keepdim=True) + c.float("epsilon", 1e-6))
    return (flat / norm).reshape(x.shape)
