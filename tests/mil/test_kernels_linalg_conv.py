"""linear, matmul, einsum, scaled_dot_product_attention, conv, conv_transpose and pooling against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from coremltools.converters.mil import Builder as mb

from orchestrator.mil import Executor
from orchestrator.mil.analysis import analyze_program
from tests.mil.programs import build, close, rand, run, run1, t


def test_linear_weight_is_out_by_in():
    x, w, b = rand(2, 5, 8), rand(6, 8, seed=1), rand(6, seed=2)
    close(run1(lambda a: mb.linear(x=a, weight=w, bias=b), a=x), F.linear(t(x), t(w), t(b)), tol=1e-5)
    close(run1(lambda a: mb.linear(x=a, weight=w), a=x), F.linear(t(x), t(w)), tol=1e-5)


@pytest.mark.parametrize(("tx", "ty"), [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_transposes_and_broadcasts(tx, ty):
    x = rand(2, 1, 4, 3) if not tx else rand(2, 1, 3, 4)
    y = rand(5, 3, 6, seed=3) if not ty else rand(5, 6, 3, seed=3)
    got = run1(lambda a, b: mb.matmul(x=a, y=b, transpose_x=tx, transpose_y=ty), a=x, b=y)
    want = torch.matmul(t(x).transpose(-1, -2) if tx else t(x), t(y).transpose(-1, -2) if ty else t(y))
    close(got, want, tol=1e-5)


@pytest.mark.parametrize("equation", ["nchw,nwhu->nchu", "chw,whu->chu"])  # the forms MIL einsum takes
def test_einsum(equation):
    lhs = equation.split("->")[0].split(",")
    sizes = {"b": 2, "h": 3, "q": 4, "k": 5, "d": 6, "n": 2, "c": 3, "w": 4, "u": 2, "a": 2}
    x = rand(*[sizes[c] for c in lhs[0]])
    y = rand(*[sizes[c] for c in lhs[1]], seed=4)
    got = run1(lambda a, b: mb.einsum(values=(a, b), equation=equation), a=x, b=y)
    close(got, torch.einsum(equation, t(x), t(y)), tol=1e-5)


def test_scaled_dot_product_attention_matches_torch_and_declares_its_scores():
    q, k, v = rand(2, 3, 7, 4), rand(2, 3, 5, 4, seed=1), rand(2, 3, 5, 6, seed=2)
    mask = rand(7, 5, seed=3)
    program = build(lambda q, k, v: mb.scaled_dot_product_attention(query=q, key=k, value=v, attn_mask=mask),
                    {"q": q.shape, "k": k.shape, "v": v.shape}, opset="iOS18")
    result = Executor(program, "fp32").run({"q": q, "k": k, "v": v})
    close(result.outputs[program.outputs[0]], F.scaled_dot_product_attention(t(q), t(k), t(v), t(mask)), tol=1e-5)
    scores = 2 * 3 * 7 * 5 * 4
    inputs = (q.size + k.size + v.size) * 4
    assert result.peak_live_bytes == inputs + 2 * 3 * 7 * 6 * 4 + scores
    workspace = [x for x in analyze_program(program, "fp32").alive_at_peak if x.producer == "workspace"]
    assert [(x.shape, x.bytes) for x in workspace] == [((2, 3, 7, 5), scores)]  # the [.., L, S] scores, not []


@pytest.mark.parametrize(("pad_type", "pad", "strides", "dilations", "groups"), [
    ("valid", None, (1, 1), (1, 1), 1),
    ("custom", (1, 2, 0, 1), (2, 1), (1, 1), 1),
    ("same", None, (2, 2), (1, 1), 2),
    ("same_lower", None, (1, 2), (2, 1), 1),
    ("custom", (1, 1, 1, 1), (1, 1), (1, 1), 4),
])
def test_conv2d_padding_strides_dilations_groups(pad_type, pad, strides, dilations, groups):
    x = rand(2, 4, 9, 8)
    w, b = rand(6 if groups != 4 else 4, 4 // groups, 3, 2, seed=1), None
    b = rand(w.shape[0], seed=2)
    kwargs = {"pad": list(pad)} if pad else {}
    got = run1(lambda a: mb.conv(x=a, weight=w, bias=b, pad_type=pad_type, strides=list(strides),
                                 dilations=list(dilations), groups=groups, **kwargs), a=x)
    k_eff = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilations, strict=True)]
    if pad_type == "custom":
        before_after = [(pad[0], pad[1]), (pad[2], pad[3])]
    elif pad_type == "valid":
        before_after = [(0, 0), (0, 0)]
    else:
        totals = [max(0, s * -(-d // s) - d + k - s) for d, k, s in zip(x.shape[2:], k_eff, strides, strict=True)]
        before_after = [((tot // 2, tot - tot // 2) if pad_type == "same" else (tot - tot // 2, tot // 2))
                        for tot in totals]
    padded = F.pad(t(x), [before_after[1][0], before_after[1][1], before_after[0][0], before_after[0][1]])
    want = F.conv2d(padded, t(w), t(b), stride=strides, dilation=dilations, groups=groups)
    close(got, want, tol=1e-4)


def test_conv1d_and_conv_transpose():
    x1, w1 = rand(1, 3, 10), rand(5, 3, 3, seed=1)
    close(run1(lambda a: mb.conv(x=a, weight=w1, pad_type="custom", pad=[1, 1]), a=x1),
          F.conv1d(t(x1), t(w1), padding=1), tol=1e-5)
    x, w = rand(1, 4, 5, 5), rand(4, 3, 3, 3, seed=2)
    got = run1(lambda a: mb.conv_transpose(x=a, weight=w, strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]), a=x)
    close(got, F.conv_transpose2d(t(x), t(w), stride=2, padding=1), tol=1e-4)


def test_pooling():
    x = rand(1, 2, 7, 6)
    got = run(build(lambda a: [
        mb.max_pool(x=a, kernel_sizes=[3, 3], strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]),
        mb.avg_pool(x=a, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid"),
        mb.avg_pool(x=a, kernel_sizes=[3, 3], strides=[1, 1], pad_type="custom", pad=[1, 1, 1, 1],
                    exclude_padding_from_average=True),
    ], {"a": x.shape}), {"a": x})
    close(got[0], F.max_pool2d(t(x), 3, 2, 1))
    close(got[1], F.avg_pool2d(t(x), 2, 2))
    close(got[2], F.avg_pool2d(t(x), 3, 1, 1, count_include_pad=False), tol=1e-5)


def test_fp16_linear_is_the_fp32_result_rounded():
    x, w = rand(3, 16), rand(8, 16, seed=5)
    program = build(lambda a: mb.linear(x=a, weight=w), {"a": x.shape})
    (fp16,) = run(program, {"a": x}, precision="fp16")
    np.testing.assert_array_equal(fp16, F.linear(t(x), t(w)).numpy().astype(np.float16).astype(np.float32))
