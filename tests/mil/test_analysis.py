"""Static analysis: FLOPs by formula, weight bytes of compressed artifacts, the manifest section."""

from __future__ import annotations

import numpy as np
import pytest
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.frontend.milproto import load as milproto

from orchestrator.mil import Executor, analyze, from_mil
from tests.mil.programs import build, rand


def test_flops_of_conv_linear_matmul_einsum_and_attention():
    w = rand(16, 4, 3, 3)
    lw = rand(32, 16)
    program = build(lambda x, q, k, v: [
        mb.conv(x=x, weight=w, pad_type="same", strides=[2, 2]),          # out 1x16x5x5
        mb.linear(x=q, weight=lw),                                        # 2x3x7x16 @ 16->32
        mb.matmul(x=q, y=k, transpose_y=True),                            # 2x3x7x16 @ 16x5
        mb.einsum(values=(v, mb.transpose(x=k, perm=[0, 3, 2, 1])), equation="nchw,nwhu->nchu"),
        mb.scaled_dot_product_attention(query=q, key=k, value=v),
    ], {"x": (1, 4, 10, 10), "q": (2, 3, 7, 16), "k": (2, 3, 5, 16), "v": (2, 3, 5, 16)}, opset="iOS18")
    a = analyze(program)
    assert a.flops_by_op_type["conv"] == 2 * (16 * 5 * 5) * 4 * 9
    assert a.flops_by_op_type["linear"] == 2 * (2 * 3 * 7 * 32) * 16
    assert a.flops_by_op_type["matmul"] == 2 * (2 * 3 * 7 * 5) * 16
    # einsum nchw,nwhu->nchu with n=2 c=3 h=5 w=16 u=3: every index letter once
    assert a.flops_by_op_type["einsum"] == 2 * 2 * 3 * 5 * 16 * 3
    assert a.flops_by_op_type["scaled_dot_product_attention"] == 2 * 2 * 3 * 7 * 5 * (16 + 16)
    assert a.flops == sum(a.flops_by_op_type.values())
    assert a.op_histogram["conv"] == 1 and a.op_histogram["transpose"] == 1


def test_compressed_weights_shrink_by_their_bit_width(tiny_programs):
    for component in ("unet", "vae_decoder", "text_encoder"):
        fp16 = analyze(tiny_programs(component, "fp16-none-split_einsum_v2"))
        fp32 = analyze(tiny_programs(component, "fp32-none-original"))
        assert fp16.weights_bytes_stored == fp16.weights_bytes_decompressed
        assert fp32.weights_bytes_decompressed == pytest.approx(2 * fp16.weights_bytes_decompressed, rel=0.02)
        for variant, bits in (("fp16-palette6-split_einsum_v2", 6), ("fp16-palette4-split_einsum_v2", 4)):
            a = analyze(tiny_programs(component, variant))
            assert a.weights_bytes_decompressed == fp16.weights_bytes_decompressed, (component, variant)
            ratio = a.weights_bytes_stored / a.weights_bytes_decompressed
            # indices at bits/16 of fp16, plus LUTs and the small uncompressed tensors (norms, biases)
            assert bits / 16 < ratio < bits / 16 + 0.15, (component, variant, ratio)


def test_decompression_equals_coremltools_on_real_palettized_artifacts(tiny_artifacts):
    import coremltools as ct

    for variant in ("fp16-palette4-split_einsum_v2", "fp16-palette6-split_einsum_v2"):
        path = tiny_artifacts[("unet", variant)].path
        model = ct.models.MLModel(str(path), skip_model_load=True)
        spec = model.get_spec()
        ct_program = milproto.load(spec, spec.specificationVersion, model.weights_dir)
        executor = Executor(from_mil(ct_program))
        constexprs = [op for op in ct_program.functions["main"].operations if op.op_type.startswith("constexpr_")]
        assert len(constexprs) > 10
        for op in constexprs:
            ours = executor.prepared_weight(op.outputs[0].name)
            np.testing.assert_array_equal(ours, op.materialized_val_inference().astype(np.float32))


def test_analysis_section_for_the_manifest(small_package):
    data = analyze(small_package).to_dict(top=2)
    assert set(data) >= {"weights_bytes_stored", "weights_bytes_decompressed", "flops", "activation_peak_bytes",
                         "peak_op", "top_tensors", "op_histogram", "precision"}
    assert len(data["top_tensors"]) == 2
    assert set(data["top_tensors"][0]) == {"name", "shape", "dtype", "bytes", "producer"}


def test_dynamic_shapes_execute_but_liveness_asks_for_fixed_shapes():
    from coremltools.converters.mil.mil import get_new_symbol

    from orchestrator.errors import ArtifactError
    from tests.mil.programs import run

    program = build(lambda x: mb.relu(x=mb.mul(x=x, y=2.0)), {"x": (get_new_symbol(), 4)})
    assert not program.types["x"].is_static
    (out,) = run(program, {"x": -np.ones((3, 4), np.float32)})
    np.testing.assert_array_equal(out, np.zeros((3, 4), np.float32))
    with pytest.raises(ArtifactError, match="liveness needs fixed shapes") as info:
        analyze(program)
    assert "x" in info.value.message and "RangeDim" in (info.value.fix or "")
