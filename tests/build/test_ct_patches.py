"""The coremltools patches in orchestrator/build/ct_patches.py: each fixes a real conversion failure, and each
test fails when coremltools changes the code it patches (then the patch can go)."""

from __future__ import annotations

import inspect

import coremltools as ct
import numpy as np
import torch
from coremltools.converters.mil.frontend.torch import ops
from torch import nn

from orchestrator.build import ct_patches


def _convert(module: nn.Module, example: torch.Tensor):
    traced = torch.jit.trace(module.eval(), example)
    return ct.convert(traced, inputs=[ct.TensorType(name="x", shape=tuple(example.shape))], convert_to="mlprogram",
                      minimum_deployment_target=ct.target.iOS16, skip_model_load=True)


class NewOnes(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x.new_ones((x.shape[0], x.shape[1]))


def test_coremltools_still_casts_with_the_python_type_on_the_array():
    # the line the _cast patch exists for: `dtype(x.val)`, which numpy 2.4 refuses for a shape-[1] array
    source = inspect.getsource(getattr(ops._cast, "__wrapped__", ops._cast))
    assert "dtype(x.val)" in source
    assert np.lib.NumpyVersion(np.__version__) >= "2.4.0"
    try:
        int(np.array([3], dtype=np.int32))
    except TypeError as exc:
        assert "0-dimensional" in str(exc)
    else:
        raise AssertionError("numpy converts a shape-[1] array to int again: the _cast patch may go")


def test_the_cast_patch_folds_a_one_element_constant():
    ct_patches.apply()
    assert getattr(ops._cast, "mlfarm_patch", False)

    class Context:
        def __init__(self) -> None:
            self.added = {}

        def add(self, var, name=None):
            self.added[name] = var

    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function

    with Function({}):
        const = mb.const(val=np.array([7], dtype=np.int32))

        class Node:
            name = "n"
            inputs = ("c",)

        class Ctx(Context):
            frontend = None

            def __contains__(self, key):
                return key == "c"

            def __getitem__(self, key):
                if key != "c":
                    raise KeyError(key)
                return const

        ctx = Ctx()
        ops._cast(ctx, Node(), int, "int32")
    assert int(ctx.added["n"].val) == 7


def test_new_ones_has_no_converter_of_coremltools_own_and_converts_with_ours():
    assert not hasattr(ops, "new_ones")  # coremltools added one: drop ours
    ct_patches.apply()
    model = _convert(NewOnes(), torch.zeros(2, 3))
    ops_used = {op.type for op in model._spec.mlProgram.functions["main"].block_specializations[
        model._spec.mlProgram.functions["main"].opset].operations}
    assert "fill" in ops_used or "const" in ops_used
    from orchestrator.mil import Executor
    from orchestrator.mil.load import from_mil

    program = from_mil(model._mil_program)
    out = Executor(program, "fp32").run({"x": np.full((2, 3), 2.0, np.float32)}).outputs
    assert np.allclose(next(iter(out.values())), 3.0)
