"""Activation liveness: the static model (analysis) and the executor's own accounting agree, and attention
scores show up where DESIGN.md section 3 says they do."""

from __future__ import annotations

import numpy as np
import pytest
from coremltools.converters.mil import Builder as mb

from orchestrator.mil import Executor, analyze
from tests.mil.blocks import block_inputs
from tests.mil.programs import build

MIB = 2**20


def test_hand_built_program_live_set_and_peak():
    # x (4 KiB) -> s = sigmoid(x), never read; a = relu(x); b = exp(a); c = a + b; d = reduce_sum(c)
    def body(x):
        mb.sigmoid(x=x)  # an output nobody reads: alive only while its op runs
        a = mb.relu(x=x)
        b = mb.exp(x=a)
        c = mb.add(x=a, y=b)
        return mb.reduce_sum(x=c, axes=[1])

    program = build(body, {"x": (8, 128)})
    size = 8 * 128 * 4
    a = analyze(program, "fp32")
    # at the add, x is dead (relu read it last) and a, b, c are alive; everywhere else at most two tensors
    assert a.activation_peak_bytes == 3 * size
    assert a.peak_op_type == "add"
    assert sorted(t.producer for t in a.alive_at_peak) == ["add", "exp", "relu"]
    result = Executor(program, "fp32").run({"x": np.ones((8, 128), np.float32)})
    assert result.peak_live_bytes == a.activation_peak_bytes
    assert result.peak_op == a.peak_op
    # fp16 runs hold fp16 outputs (the input stays as declared: fp32)
    half = analyze(program, "fp16")
    assert half.activation_peak_bytes == 3 * size // 2
    assert Executor(program, "fp16").run({"x": np.ones((8, 128), np.float32)}).peak_live_bytes == 3 * size // 2


@pytest.mark.slow
def test_sd15_attention_block_original_holds_the_512_mib_scores(attention_blocks):
    a = analyze(attention_blocks("original", 64))
    assert a.activation_peak_bytes >= 512 * MIB
    largest = a.alive_at_peak[0]
    assert largest.shape == (2, 8, 4096, 4096) and largest.dtype == "fp16" and largest.bytes == 512 * MIB
    assert largest.producer in ("matmul", "mul", "softmax")
    assert a.peak_op_type in ("matmul", "mul", "softmax", "real_div")


@pytest.mark.slow
def test_split_einsum_v2_cuts_the_peak_at_least_4x(attention_blocks):
    original = analyze(attention_blocks("original", 64))
    split = analyze(attention_blocks("split_einsum_v2", 64))
    assert original.activation_peak_bytes >= 4 * split.activation_peak_bytes
    # no full query x key score tensor is ever alive: chunks of 512 queries at most
    assert all(4096 * 4096 not in (t.shape[-1] * t.shape[-2],) for t in split.alive_at_peak if len(t.shape) >= 2)
    assert split.flops == pytest.approx(original.flops, rel=0.01)  # same maths, different layout


@pytest.mark.parametrize("attention", ["original", "split_einsum_v2"])
def test_executor_peak_equals_static_peak_on_an_attention_block(attention_blocks, attention):
    program = attention_blocks(attention, 32)
    inputs = block_inputs(32 * 32)
    for precision in ("fp16", "fp32"):
        static = analyze(program, precision)
        tracked = Executor(program, precision).run(inputs)
        assert tracked.peak_live_bytes == static.activation_peak_bytes, precision
        assert tracked.peak_op == static.peak_op


def test_executor_peak_equals_static_peak_on_tiny_sd(tiny_artifacts, tiny_programs, tiny_spec):
    from orchestrator.models import load_source

    source = load_source(tiny_spec.model)
    for component, variant in sorted(tiny_artifacts):
        program = tiny_programs(component, variant)
        inputs = source.example_inputs(component, tiny_spec.model.components[component], 0)
        static = analyze(program)
        tracked = Executor(program).run(inputs)
        assert tracked.peak_live_bytes == static.activation_peak_bytes, (component, variant)
        assert tracked.peak_op == static.peak_op, (component, variant)
        # and the model is a real one: the peak is well below the sum of every tensor the program makes
        total = sum(program.types[o].nbytes for op in program.ops if not op.is_constexpr for o in op.outputs)
        assert static.activation_peak_bytes < total / 4, (component, variant)
