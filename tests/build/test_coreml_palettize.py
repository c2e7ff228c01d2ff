"""palettize_model against coremltools' own palettize_weights on a real converted torch model."""

from __future__ import annotations

from typing import Any

import coremltools as ct
import numpy as np
import pytest
import torch
from coremltools.optimize import _utils as optimize_utils
from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig, palettize_weights

from orchestrator.build.coreml_palettize import exact_lut_function, palettize_model
from orchestrator.build.palettize import palettize


class Tiny(torch.nn.Module):
    """Conv and linear weights above the 2,048-element threshold, one with 40 output channels (not a
    multiple of 16: grouped palettes skip it), and biases below the threshold (never compressed)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(16, 32, 3, padding=1)
        self.proj = torch.nn.Linear(96, 128)
        self.odd = torch.nn.Linear(128, 40)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv(y), self.odd(torch.relu(self.proj(x)))


def _convert(precision: Any, target: Any = ct.target.iOS18) -> Any:
    torch.manual_seed(0)
    model = Tiny().eval()
    args = (torch.randn(2, 96), torch.randn(1, 16, 8, 8))
    exported = torch.export.export(model, args).run_decompositions({})
    return ct.convert(exported, minimum_deployment_target=target, compute_precision=precision)


@pytest.fixture(scope="module")
def fp16_model() -> Any:
    return _convert(ct.precision.FLOAT16)


def _weights(mlmodel: Any) -> dict[str, np.ndarray]:
    return {op.name: op.outputs[0].val for op in mlmodel._mil_program.functions["main"].operations
            if op.op_type == "const" and isinstance(op.outputs[0].val, np.ndarray) and op.outputs[0].val.size > 2048}


def _structure(mlmodel: Any, original: dict[str, np.ndarray]) -> tuple[list[tuple[Any, ...]], dict[str, float]]:
    """(op types with LUT/index layout, {weight: MSE of the decompressed weight against the original})."""
    ops: list[tuple[Any, ...]] = []
    mse: dict[str, float] = {}
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type != "constexpr_lut_to_dense":
            ops.append((op.op_type, op.name))
            continue
        lut, indices = op.lut.val, op.indices.val
        ops.append((op.op_type, op.name, lut.shape, lut.dtype, indices.shape, indices.dtype))
        dense = optimize_utils.lut_to_dense(indices, lut).astype(np.float64)
        mse[op.name] = float(np.mean((dense - original[op.name.removesuffix("_palettized")]) ** 2))
    return ops, mse


def _stock(mlmodel: Any, nbits: int, group_size: int | None) -> Any:
    config = OpPalettizerConfig(mode="kmeans", nbits=nbits, group_size=group_size or 0,
                                granularity="per_tensor" if group_size is None else "per_grouped_channel")
    return palettize_weights(mlmodel, OptimizationConfig(global_config=config))


@pytest.mark.parametrize(("nbits", "group_size"), [(6, None), (4, None), (4, 16), (2, 8)])
def test_same_ops_as_coremltools_and_never_worse(fp16_model: Any, nbits: int, group_size: int | None) -> None:
    original = _weights(fp16_model)
    theirs, their_mse = _structure(_stock(fp16_model, nbits, group_size), original)
    ours, our_mse = _structure(palettize_model(fp16_model, nbits=nbits, group_size=group_size), original)
    assert ours == theirs
    palettized = [op for op in ours if op[0] == "constexpr_lut_to_dense"]
    expected = 2 if group_size == 16 else 3  # 40 channels are not a multiple of 16: skipped by both
    assert len(palettized) == expected
    for op in palettized:
        assert op[2][-2:] == (2**nbits, 1) and op[3] == np.float16
    for name in our_mse:
        assert our_mse[name] <= their_mse[name] * (1 + 1e-9), name


def test_luts_are_the_exact_palettizer_output(fp16_model: Any) -> None:
    original = _weights(fp16_model)
    grouped = palettize_model(fp16_model, nbits=4, group_size=16)
    for op in grouped._mil_program.functions["main"].operations:
        if op.op_type == "constexpr_lut_to_dense":
            weight = original[op.name.removesuffix("_palettized")]
            lut, indices = palettize(weight, 4, group_size=16, axis=0)
            np.testing.assert_array_equal(op.lut.val.reshape(lut.shape), lut)
            np.testing.assert_array_equal(op.indices.val, indices)


def test_float32_program_gets_float32_luts() -> None:
    fp32 = _convert(ct.precision.FLOAT32)
    original = _weights(fp32)
    theirs, their_mse = _structure(_stock(fp32, 4, None), original)
    ours, our_mse = _structure(palettize_model(fp32, nbits=4), original)
    assert ours == theirs
    assert all(op[3] == np.float32 for op in ours if op[0] == "constexpr_lut_to_dense")
    for name in our_mse:  # coremltools uses scikit-learn for fp32; ours clusters the fp16 view, still better
        assert our_mse[name] < their_mse[name], name


def test_grouped_needs_the_ios18_opset() -> None:
    ios17 = _convert(ct.precision.FLOAT16, ct.target.iOS17)
    with pytest.raises(ValueError, match="iOS18"):
        palettize_model(ios17, nbits=4, group_size=16)
    per_tensor = palettize_model(ios17, nbits=4)  # per-tensor palettes work on the iOS 16/17 opset
    ops = [op.op_type for op in per_tensor._mil_program.functions["main"].operations]
    assert ops.count("constexpr_lut_to_dense") == 3


def test_public_custom_lut_function_hook_gives_the_same_model(fp16_model: Any) -> None:
    original = _weights(fp16_model)
    for group_size in (None, 16):
        config = OpPalettizerConfig(mode="custom", lut_function=exact_lut_function(4), group_size=group_size or 0,
                                    granularity="per_tensor" if group_size is None else "per_grouped_channel")
        custom = palettize_weights(fp16_model, OptimizationConfig(global_config=config))
        via_hook, hook_mse = _structure(custom, original)
        direct, direct_mse = _structure(palettize_model(fp16_model, nbits=4, group_size=group_size), original)
        assert [op[:4] for op in via_hook] == [op[:4] for op in direct]
        assert hook_mse == direct_mse


def test_bad_nbits_is_refused(fp16_model: Any) -> None:
    with pytest.raises(ValueError, match="nbits"):
        palettize_model(fp16_model, nbits=5)
    with pytest.raises(ValueError, match="nbits"):
        exact_lut_function(7)
