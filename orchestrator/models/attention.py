"""Attention implementations as graph changes applied to the PyTorch model before export.

Three kernels over (batch, heads, queries, head_dim) tensors, the same maths laid out differently:

    original         one batched matmul over all heads -> softmax -> matmul; the full
                     [batch, heads, queries, keys] score tensor exists at once
    split_einsum     one einsum pair per head; only [batch, queries, keys] per head
    split_einsum_v2  per head, and the queries cut into chunks of ATTENTION["split_einsum_v2"].query_chunk
                     (512), so at most [batch, 512, keys] scores exist at a time

They are installed in two places: diffusers ``Attention`` modules (UNet, VAE) get an ``MlfarmAttnProcessor``;
transformers models (the CLIP text encoder) get a registered attention function selected through
``config._attn_implementation``. Using our own ``original`` instead of the libraries' default (which calls
``scaled_dot_product_attention``) keeps the graph independent of the deployment target: coremltools turns
SDPA into a fused iOS 18 op, which would change what ``original`` means from one target to the next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from orchestrator.variants import ATTENTION

Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, "torch.Tensor | None"], torch.Tensor]


# Score given to masked positions. Finite and fp16-representable: a -inf or float32-min constant would become
# -inf in fp16 and break weight compression of any float mask constant (k-means on infinities).
MASKED = -1e4


def _masked(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply a boolean mask (True = attend). Masks are boolean, never additive float tensors, so that the
    exported graph holds a bool constant and a scalar instead of a float tensor compressors would touch."""
    return scores if mask is None else scores.masked_fill(~mask, MASKED)


def original(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    scores = _masked(torch.matmul(q, k.transpose(-1, -2)) * scale, mask)
    return torch.matmul(scores.softmax(dim=-1), v)


def _one_head(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
              mask: torch.Tensor | None) -> torch.Tensor:
    """q [b, q, d], k and v [b, k, d], boolean mask [b, q, k] or None -> [b, q, d].

    Written as matmuls, not einsum: coremltools expands every einsum into several transposes and reshapes,
    which made conversion of the split variants ~2.5x slower for the same per-head computation.
    """
    scores = _masked(torch.matmul(q, k.transpose(-1, -2)) * scale, mask)
    return torch.matmul(scores.softmax(dim=-1), v)


def _head_mask(mask: torch.Tensor | None, head: int) -> torch.Tensor | None:
    if mask is None:
        return None
    return mask[:, head if mask.shape[1] > 1 else 0]


def split_einsum(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    heads = [_one_head(q[:, h], k[:, h], v[:, h], scale, _head_mask(mask, h)) for h in range(q.shape[1])]
    return torch.stack(heads, dim=1)


def split_einsum_v2(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    chunk = ATTENTION["split_einsum_v2"].query_chunk or q.shape[2]
    heads = []
    for h in range(q.shape[1]):
        head_mask = _head_mask(mask, h)
        parts = []
        for start in range(0, q.shape[2], chunk):
            part_mask = None if head_mask is None else head_mask[:, start:start + chunk]
            parts.append(_one_head(q[:, h, start:start + chunk], k[:, h], v[:, h], scale, part_mask))
        heads.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
    return torch.stack(heads, dim=1)


KERNELS: dict[str, Kernel] = {"original": original, "split_einsum": split_einsum, "split_einsum_v2": split_einsum_v2}


class MlfarmAttnProcessor:
    """A diffusers attention processor: the projections of diffusers' own processor, our kernel in the middle.

    Installed on every ``diffusers.models.attention_processor.Attention`` of a model by ``apply_attention``;
    stateless, so one instance can serve every layer.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.kernel = KERNELS[name]

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        if attention_mask is not None:
            raise ValueError("attention masks are not used by Stable Diffusion UNets/VAEs; mlfarm does not export them")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        image_shape = hidden_states.shape if hidden_states.ndim == 4 else None
        if image_shape is not None:
            b, c, h, w = image_shape
            hidden_states = hidden_states.view(b, c, h * w).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        q, k, v = (self._heads(attn, x) for x in (attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)))
        if getattr(attn, "norm_q", None) is not None:
            q = attn.norm_q(q)
        if getattr(attn, "norm_k", None) is not None:
            k = attn.norm_k(k)
        out = self.kernel(q, k, v, attn.scale, None)
        out = out.transpose(1, 2).reshape(out.shape[0], -1, out.shape[1] * out.shape[3])
        out = attn.to_out[1](attn.to_out[0](out))
        if image_shape is not None:
            out = out.transpose(-1, -2).reshape(image_shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    @staticmethod
    def _heads(attn: Any, x: torch.Tensor) -> torch.Tensor:
        """[b, s, heads * d] -> [b, heads, s, d]."""
        return x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)


def _transformers_function(kernel: Kernel) -> Callable[..., tuple[torch.Tensor, None]]:
    def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                  attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                  **kwargs: Any) -> tuple[torch.Tensor, None]:
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        mask = None if attention_mask is None else attention_mask[:, :, :, : key.shape[-2]]
        # transformers expects [batch, queries, heads, head_dim] back.
        return kernel(query, key, value, scale, mask).transpose(1, 2).contiguous(), None

    return attention


def transformers_name(name: str) -> str:
    return f"mlfarm_{name}"


def _boolean_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """transformers' boolean mask (True = attend), never skipped: CLIP's text encoder is causal."""
    from transformers.masking_utils import sdpa_mask

    kwargs.pop("dtype", None)
    kwargs["allow_is_causal_skip"] = False
    mask: torch.Tensor | None = sdpa_mask(*args, **kwargs)
    return mask


def _register_transformers() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    for name, kernel in KERNELS.items():
        AttentionInterface.register(transformers_name(name), _transformers_function(kernel))
        # Without a registered mask function transformers builds no mask at all for a custom implementation.
        ALL_MASK_ATTENTION_FUNCTIONS.register(transformers_name(name), _boolean_mask)


def apply_attention(model: nn.Module, name: str) -> nn.Module:
    """Install attention implementation ``name`` on every attention layer of ``model`` (in place)."""
    if name not in KERNELS:
        raise KeyError(f"unknown attention {name!r}; known: {', '.join(KERNELS)}")
    if hasattr(model, "set_attn_processor"):  # diffusers ModelMixin
        cast(Any, model).set_attn_processor(MlfarmAttnProcessor(name))
    elif hasattr(model, "config") and hasattr(model.config, "_attn_implementation"):  # transformers
        _register_transformers()
        model.config._attn_implementation = transformers_name(name)
    else:
        raise TypeError(f"{type(model).__name__} has no attention layers mlfarm knows how to replace")
    return model
