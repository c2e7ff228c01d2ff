"""Attention implementations: same outputs as the library's own attention in fp32, different graphs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from orchestrator.models import load_source
from orchestrator.models.attention import KERNELS, MlfarmAttnProcessor, apply_attention
from orchestrator.models.builtin import BuiltinSource
from orchestrator.spec import ReleaseSpec
from orchestrator.variants import ATTENTION

IMPLS = ("original", "split_einsum", "split_einsum_v2")


@pytest.fixture(scope="module")
def source() -> BuiltinSource:
    src = load_source("builtin:tiny-sd")
    assert isinstance(src, BuiltinSource)
    return src


def _library_default(source: BuiltinSource, component: str) -> torch.nn.Module:
    """The wrapped component with the library's own attention (diffusers/transformers SDPA), untouched."""
    from orchestrator.models.wrappers import wrap

    return wrap(component, source._load(component))


def _run(module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        out = module(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    assert isinstance(out, tuple)
    return out


def test_registry_matches_variant_axis() -> None:
    assert set(KERNELS) == set(ATTENTION.names())


@pytest.mark.parametrize("component", ["text_encoder", "unet", "vae_decoder"])
@pytest.mark.parametrize("impl", IMPLS)
def test_fp32_outputs_equal_the_library_attention(source: BuiltinSource, tiny_spec: ReleaseSpec, component: str,
                                                  impl: str) -> None:
    inputs = source.example_inputs(component, tiny_spec.model.components[component], seed=3)
    reference = _run(_library_default(source, component), inputs)
    ours = _run(source.module(component, impl), inputs)
    assert len(ours) == len(reference) == len(source.output_names(component))
    for got, want in zip(ours, reference, strict=True):
        assert got.shape == want.shape
        scale = float(want.abs().max())
        assert float((got - want).abs().max()) <= 1e-5 * max(scale, 1.0)


class _SoftmaxShapes(TorchFunctionMode):
    """Records the shape of every tensor softmax is applied to: the attention score tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if getattr(func, "__name__", "") == "softmax":
            self.shapes.append(tuple(args[0].shape))
        return func(*args, **(kwargs or {}))


def _score_shapes(module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> list[tuple[int, ...]]:
    mode = _SoftmaxShapes()
    with mode:
        _run(module, inputs)
    return mode.shapes


@pytest.fixture(scope="module")
def unet_scores(source: BuiltinSource, tiny_spec: ReleaseSpec) -> Iterator[dict[str, list[tuple[int, ...]]]]:
    inputs = source.example_inputs("unet", tiny_spec.model.components["unet"], seed=0)
    yield {impl: _score_shapes(source.module("unet", impl), inputs) for impl in IMPLS}


def test_original_materialises_all_heads_at_once(unet_scores: dict[str, list[tuple[int, ...]]]) -> None:
    # tiny-sd UNet: batch 2, 2 heads; the first block attends over the 32x32 latent = 1024 tokens.
    assert (2, 2, 1024, 1024) in unet_scores["original"]
    assert all(len(s) == 4 for s in unet_scores["original"])


def test_split_einsum_computes_one_head_at_a_time(unet_scores: dict[str, list[tuple[int, ...]]]) -> None:
    shapes = unet_scores["split_einsum"]
    assert (2, 1024, 1024) in shapes and all(len(s) == 3 for s in shapes)
    assert len(shapes) == 2 * len(unet_scores["original"])  # one softmax per head (2 heads)


def test_split_einsum_v2_never_holds_more_than_512_queries(unet_scores: dict[str, list[tuple[int, ...]]]) -> None:
    shapes = unet_scores["split_einsum_v2"]
    assert max(s[1] for s in shapes) == 512
    assert (2, 512, 1024) in shapes  # self-attention at 1024 tokens: queries split in two chunks
    assert len(shapes) > len(unet_scores["split_einsum"])


def test_text_encoder_keeps_its_causal_mask(source: BuiltinSource, tiny_spec: ReleaseSpec) -> None:
    ids = source.example_inputs("text_encoder", tiny_spec.model.components["text_encoder"], seed=1)
    changed = ids["input_ids"].copy()
    changed[0, -1] = (changed[0, -1] + 1) % 1024
    for impl in IMPLS:
        module = source.module("text_encoder", impl)
        before, after = _run(module, ids)[0], _run(module, {"input_ids": changed})[0]
        # Causal: changing the last token changes only the last position's embedding.
        assert torch.equal(before[0, :-1], after[0, :-1])
        assert not torch.equal(before[0, -1], after[0, -1])


def test_apply_attention_installs_processors_on_every_layer(source: BuiltinSource) -> None:
    unet: Any = apply_attention(source._load("unet"), "split_einsum_v2")
    processors = unet.attn_processors.values()
    assert processors and all(isinstance(p, MlfarmAttnProcessor) and p.name == "split_einsum_v2"
                              for p in processors)
    with pytest.raises(KeyError, match="unknown attention"):
        apply_attention(unet, "flash")
