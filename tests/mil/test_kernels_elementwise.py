"""Element-wise kernels against numpy/torch, including the fp16 rounding of the device emulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from coremltools.converters.mil import Builder as mb

from orchestrator.mil.kernels.elementwise import NATIVE_FP16
from tests.mil.programs import build, close, rand, run, run1, t


def erf(x: np.ndarray) -> np.ndarray:
    return torch.erf(torch.from_numpy(x).double()).numpy()

BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide, "maximum": np.maximum,
    "minimum": np.minimum, "floor_div": np.floor_divide, "mod": np.mod,
    "pow": lambda x, y: np.power(np.abs(x), y),
}


@pytest.mark.parametrize("op", sorted(BINARY))
def test_binary_ops_broadcast_like_numpy(op):
    x, y = rand(2, 3, 4), rand(4, seed=1, low=0.5, high=3.0)
    if op == "pow":
        x = np.abs(x)
    got = run1(lambda a, b: getattr(mb, op)(x=a, y=b), a=x, b=y)
    close(got, BINARY[op](x, y).astype(np.float32), tol=1e-5)


def test_comparisons_and_logic_give_bools():
    x, y = rand(3, 4), rand(3, 4, seed=2)
    got = run1(lambda a, b: mb.logical_and(x=mb.less(x=a, y=b), y=mb.greater_equal(x=a, y=mb.mul(x=b, y=0.5))),
               a=x, b=y)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, (x < y) & (x >= y * 0.5))


UNARY = {
    "abs": np.abs, "ceil": np.ceil, "cos": np.cos, "exp": np.exp, "floor": np.floor, "sign": np.sign,
    "sin": np.sin, "square": np.square, "tanh": np.tanh, "erf": erf, "round": np.round,
    "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "silu": lambda x: x / (1 + np.exp(-x)), "softsign": lambda x: x / (1 + np.abs(x)),
    "softplus": lambda x: np.log1p(np.exp(x)), "relu6": lambda x: np.clip(x, 0, 6),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_ops(op):
    x = rand(4, 5) * 3
    close(run1(lambda a: getattr(mb, op)(x=a), a=x), UNARY[op](x).astype(np.float32), tol=1e-5)


def test_sqrt_rsqrt_inverse_log_add_their_epsilon():
    x = rand(3, 4, low=0.1, high=4.0)
    got = run(build(lambda a: [mb.sqrt(x=a), mb.rsqrt(x=a, epsilon=0.5), mb.inverse(x=a, epsilon=0.25),
                               mb.log(x=a, epsilon=1.0)], {"a": x.shape}), {"a": x})
    for g, want in zip(got, [np.sqrt(x), 1 / np.sqrt(x + 0.5), 1 / (x + 0.25), np.log(x + 1.0)], strict=True):
        close(g, want.astype(np.float32))


@pytest.mark.parametrize(("mode", "reference"), [
    ("EXACT", lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2)))),
    ("TANH_APPROXIMATION", lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))),
    ("SIGMOID_APPROXIMATION", lambda x: x / (1 + np.exp(-1.702 * x))),
])
def test_gelu_modes(mode, reference):
    x = rand(6, 7) * 3
    close(run1(lambda a: mb.gelu(x=a, mode=mode), a=x), reference(x).astype(np.float32), tol=1e-5)


def test_softmax_clip_select_and_parametric_activations():
    x = rand(2, 3, 5) * 4
    got = run(build(lambda a: [
        mb.softmax(x=a, axis=1), mb.clip(x=a, alpha=-1.0, beta=0.5),
        mb.select(cond=mb.greater(x=a, y=0.0), a=a, b=mb.mul(x=a, y=-2.0)),
        mb.leaky_relu(x=a, alpha=0.1), mb.elu(x=a, alpha=0.7), mb.scaled_tanh(x=a, alpha=2.0, beta=0.5),
        mb.sigmoid_hard(x=a, alpha=0.3, beta=0.4), mb.linear_activation(x=a, alpha=1.5, beta=-1.0),
        mb.thresholded_relu(x=a, alpha=0.5), mb.clamped_relu(x=a, alpha=0.2, beta=1.5),
    ], {"a": x.shape}), {"a": x})
    tx = t(x)
    want = [torch.softmax(tx, 1), tx.clamp(-1, 0.5), torch.where(tx > 0, tx, -2 * tx),
            torch.nn.functional.leaky_relu(tx, 0.1), torch.nn.functional.elu(tx, 0.7), 2 * torch.tanh(0.5 * tx),
            (0.3 * tx + 0.4).clamp(0, 1), 1.5 * tx - 1, torch.where(tx >= 0.5, tx, 0 * tx),
            torch.where(tx >= 0, tx, 0.2 * tx).clamp(max=1.5)]
    for g, w in zip(got, want, strict=True):
        close(g, w, tol=1e-5)


def test_cast_truncates_to_int_and_round_trips_fp16():
    x = np.array([[-2.7, -0.2, 0.5, 3.9]], dtype=np.float32)
    got_int, got_half = run(build(lambda a: [mb.cast(x=a, dtype="int32"), mb.cast(x=a, dtype="fp16")],
                                  {"a": x.shape}), {"a": x}, precision="fp16")
    np.testing.assert_array_equal(got_int, np.array([[-2, 0, 0, 3]], dtype=np.int32))
    np.testing.assert_array_equal(got_half, x.astype(np.float16))


def test_fp16_mode_rounds_every_op_output_fp32_mode_does_not():
    # (x + 1e-4) - x: exact in fp32, 0 in fp16 where 1 + 1e-4 rounds back to 1.
    x = np.ones((1, 4), dtype=np.float32)
    program = build(lambda a: mb.sub(x=mb.add(x=a, y=1e-4), y=a), {"a": x.shape})
    (fp32,) = run(program, {"a": x}, precision="fp32")
    (fp16,) = run(program, {"a": x}, precision="fp16")
    np.testing.assert_allclose(fp32, 1e-4, rtol=1e-3)
    assert fp16.dtype == np.float32  # declared output type, values rounded on the way
    np.testing.assert_array_equal(fp16, 0.0)


@pytest.mark.parametrize("op", sorted(NATIVE_FP16))
def test_native_fp16_kernels_equal_fp32_compute_then_rounding(op):
    x = (rand(4, 64, 256) * 4).astype(np.float16)
    program = build(lambda a: getattr(mb, op)(x=a), {"a": x.shape}, dtype="fp16")
    (native,) = run(program, {"a": x}, precision="fp16")
    fn = {"softmax": lambda v: torch.softmax(v, -1)}.get(op) or getattr(torch, op, None) or getattr(
        torch.nn.functional, op)
    reference = fn(torch.from_numpy(x).float()).half().numpy()
    np.testing.assert_array_equal(native.astype(np.float16), reference)
