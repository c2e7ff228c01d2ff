"""Weight decompression kernels against coremltools' own reference decompressors and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_lut_to_dense as lut16
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_lut_to_dense as lut18
from coremltools.optimize import _utils as ct_utils

from orchestrator.mil import Executor, analyze
from orchestrator.mil.kernels.compression import unpack_bits
from tests.mil.programs import build, close, rand, run


@pytest.mark.parametrize("nbits", [1, 2, 4, 6, 8])
def test_unpack_bits_inverts_coremltools_packing(nbits):
    values = np.random.default_rng(nbits).integers(0, 2**nbits, size=37).astype(np.uint8)
    packed = ct_utils.pack_elements_into_bits(values, nbits)
    np.testing.assert_array_equal(unpack_bits(packed, nbits, values.size), values)


def test_ios16_lut_packed_indices():
    rng = np.random.default_rng(0)
    lut = rng.standard_normal(16).astype(np.float16)
    idx = rng.integers(0, 16, size=6 * 8).astype(np.uint8)
    packed = ct_utils.pack_elements_into_bits(idx, 4)
    program = build(lambda x: mb.linear(x=x, weight=mb.constexpr_lut_to_dense(
        indices=packed, lut=lut, shape=np.array([6, 8], np.uint32))), {"x": (8, 8)}, opset="iOS16", dtype="fp16")
    eye = np.eye(8, dtype=np.float32)
    (got,) = run(program, {"x": eye}, precision="fp32")
    want = lut16.decompress(lut, packed, np.array([6, 8])).astype(np.float32)
    close(got, want.T)
    np.testing.assert_array_equal(want.reshape(-1), lut[idx].astype(np.float32))


@pytest.mark.parametrize(("groups", "vector"), [((1, 1), 1), ((3, 1), 1), ((1, 2), 1), ((1, 1), 2)])
def test_ios18_grouped_and_vector_luts_match_coremltools(groups, vector):
    rng = np.random.default_rng(1)
    out_ch, in_ch = 6, 8
    idx_shape = (out_ch // vector, in_ch) if vector > 1 else (out_ch, in_ch)
    indices = rng.integers(0, 4, size=idx_shape).astype(types.np_uint2_dtype)
    lut = rng.standard_normal((*groups, 4, vector)).astype(np.float16)
    kwargs = {"vector_axis": 0} if vector > 1 else {}
    program = build(lambda x: mb.linear(x=x, weight=mb.constexpr_lut_to_dense(indices=indices, lut=lut, **kwargs)),
                    {"x": (8, 8)}, opset="iOS18", dtype="fp16")
    (got,) = run(program, {"x": np.eye(8, dtype=np.float32)}, precision="fp32")
    want = lut18.decompress(indices, lut, 0 if vector > 1 else None).astype(np.float32)
    close(got, want.T)


def test_affine_and_blockwise_dequantize():
    rng = np.random.default_rng(2)
    q = rng.integers(-128, 127, size=(6, 8)).astype(np.int8)
    scale, zero = rng.uniform(0.01, 0.1, 6).astype(np.float16), rng.integers(-3, 3, 6).astype(np.int8)
    bscale = rng.uniform(0.01, 0.1, (3, 2)).astype(np.float16)
    boffset = rng.integers(-3, 3, (3, 2)).astype(np.int8)
    program = build(lambda x: [
        mb.linear(x=x, weight=mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zero, scale=scale, axis=0)),
        mb.linear(x=x, weight=mb.constexpr_blockwise_shift_scale(data=q, scale=bscale, offset=boffset)),
    ], {"x": (8, 8)}, opset="iOS18", dtype="fp16")
    got = run(program, {"x": np.eye(8, dtype=np.float32)}, precision="fp32")
    affine = scale[:, None].astype(np.float32) * (q.astype(np.float32) - zero[:, None])
    block = np.repeat(np.repeat(bscale.astype(np.float32), 2, 0), 4, 1) * (
        q.astype(np.float32) - np.repeat(np.repeat(boffset, 2, 0), 4, 1))
    close(got[0], affine.T, tol=1e-3)
    close(got[1], block.T, tol=1e-3)


def test_sparse_to_dense_ios18():
    rng = np.random.default_rng(3)
    mask = (rng.random((6, 8)) > 0.5).astype(types.np_uint1_dtype)
    data = rng.standard_normal(int(mask.sum())).astype(np.float16)
    program = build(lambda x: mb.linear(x=x, weight=mb.constexpr_sparse_to_dense(nonzero_data=data, mask=mask)),
                    {"x": (8, 8)}, opset="iOS18", dtype="fp16")
    (got,) = run(program, {"x": np.eye(8, dtype=np.float32)}, precision="fp32")
    dense = np.zeros((6, 8), np.float32)
    dense[mask.astype(bool)] = data
    close(got, dense.T)


def test_decompressed_weights_are_prepared_once_and_count_as_weights_not_activations():
    rng = np.random.default_rng(4)
    indices = rng.integers(0, 16, size=(64, 32)).astype(types.np_uint4_dtype)
    lut = rng.standard_normal((4, 1, 16, 1)).astype(np.float16)  # 4 groups of 16 output channels
    bias = rng.standard_normal(64).astype(np.float16)
    program = build(lambda x: mb.linear(x=x, weight=mb.constexpr_lut_to_dense(indices=indices, lut=lut), bias=bias),
                    {"x": (2, 32)}, opset="iOS18", dtype="fp16")
    a = analyze(program)
    assert a.weights_bytes_stored == 64 * 32 // 2 + lut.nbytes + bias.nbytes  # packed 4-bit indices + LUTs
    assert a.weights_bytes_decompressed == 64 * 32 * 2 + bias.nbytes
    assert {t.name for t in a.alive_at_peak} == set(program.inputs) | set(program.outputs)
    result = Executor(program).run({"x": rand(2, 32)})
    assert result.peak_live_bytes == a.activation_peak_bytes == 2 * 32 * 2 + 2 * 64 * 2
