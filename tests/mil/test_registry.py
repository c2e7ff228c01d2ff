"""The op registry is complete for every artifact our example models produce, and refuses duplicates."""

from __future__ import annotations

import pytest

from orchestrator.mil import load
from orchestrator.mil.kernels import KERNELS, KernelRegistry


@pytest.mark.slow
def test_every_op_of_every_tiny_sd_variant_has_a_kernel(all_tiny_artifacts, tiny_spec):
    expected = {(c, v.id) for c in tiny_spec.model.components for v in tiny_spec.variant_list()}
    assert set(all_tiny_artifacts) == expected
    seen: dict[str, str] = {}
    for (component, variant), entry in sorted(all_tiny_artifacts.items()):
        for op_type in load(entry.path).op_types():
            seen.setdefault(op_type, f"{component}/{variant}")
    missing = {op: where for op, where in seen.items() if op not in KERNELS}
    assert not missing, f"ops without a kernel (first artifact using them): {missing}"
    # the variants really differ in what they ask of the executor
    assert {"constexpr_lut_to_dense", "constexpr_affine_dequantize", "conv", "einsum" if "einsum" in seen
            else "matmul", "softmax", "layer_norm", "gather"} <= set(seen)


def test_registering_an_op_twice_is_refused():
    registry = KernelRegistry()
    registry.register("relu")(lambda c: c.tensor("x"))
    with pytest.raises(ValueError, match="'relu' already has a kernel"):
        registry.register("relu")(lambda c: c.tensor("x"))
    assert registry.missing({"relu", "lstm"}) == ["lstm"]


def test_issue_op_set_is_covered():
    issue_ops = {
        "conv", "linear", "matmul", "einsum", "softmax", "layer_norm", "instance_norm", "gelu", "silu", "sigmoid",
        "tanh", "add", "mul", "sub", "real_div", "pow", "sqrt", "rsqrt", "reduce_mean", "reduce_sum", "reduce_max",
        "reshape", "transpose", "expand_dims", "squeeze", "concat", "split", "slice_by_index", "slice_by_size",
        "gather", "cast", "upsample_nearest_neighbor", "upsample_bilinear", "sin", "cos", "constexpr_lut_to_dense",
        "constexpr_affine_dequantize", "constexpr_blockwise_shift_scale",
    }
    assert KERNELS.missing(set(issue_ops)) == []
