"""Reductions: ``reduce_*`` over ``axes`` (all axes when omitted; ``keep_dims`` false by default) and
``reduce_argmax`` / ``reduce_argmin`` over one ``axis`` (int32 indices)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from orchestrator.mil.kernels.registry import KERNELS, OpCall, dims

Reducer = Callable[[torch.Tensor, list[int], bool], torch.Tensor]


def _amax(x: torch.Tensor, axes: list[int], keep: bool) -> torch.Tensor:
    return torch.amax(x, dim=axes, keepdim=keep)


def _amin(x: torch.Tensor, axes: list[int], keep: bool) -> torch.Tensor:
    return torch.amin(x, dim=axes, keepdim=keep)


def _prod(x: torch.Tensor, axes: list[int], keep: bool) -> torch.Tensor:
    for a in sorted(axes, reverse=True):
        x = torch.prod(x, dim=a, keepdim=keep)
    return x


_REDUCERS: dict[str, Reducer] = {
    "reduce_sum": lambda x, a, k: torch.sum(x, dim=a, keepdim=k),
    "reduce_mean": lambda x, a, k: torch.mean(x, dim=a, keepdim=k),
    "reduce_max": _amax,
    "reduce_min": _amin,
    "reduce_prod": _prod,
    "reduce_sum_square": lambda x, a, k: torch.sum(x * x, dim=a, keepdim=k),
    "reduce_l1_norm": lambda x, a, k: torch.sum(x.abs(), dim=a, keepdim=k),
    "reduce_l2_norm": lambda x, a, k: torch.sqrt(torch.sum(x * x, dim=a, keepdim=k)),
    "reduce_log_sum": lambda x, a, k: torch.log(torch.sum(x, dim=a, keepdim=k)),
    "reduce_log_sum_exp": lambda x, a, k: torch.logsumexp(x, dim=a, keepdim=k),
}


def _reduction(fn: Reducer) -> Callable[[OpCall], torch.Tensor]:
    def kernel(c: OpCall) -> torch.Tensor:
        x = c.tensor("x")
        return fn(x, dims(c.ints("axes"), x.dim()), c.bool("keep_dims"))

    return kernel


for _name, _fn in _REDUCERS.items():
    KERNELS.register(_name)(_reduction(_fn))


@KERNELS.register("reduce_argmax", "reduce_argmin")
def reduce_arg(c: OpCall) -> torch.Tensor:
    x = c.tensor("x")
    fn = torch.argmax if c.op.type == "reduce_argmax" else torch.argmin
    return fn(x, dim=c.int("axis", -1), keepdim=c.bool("keep_dims")).to(torch.int32)
