"""Small, tested fixes to coremltools 9.0's PyTorch frontend, applied once before mlfarm converts anything.

Each patch checks that the code it fixes is still the one it was written for, and tests/build/test_ct_patches.py
fails when coremltools fixes or changes it (then the patch goes):

- ``_cast`` (``aten::Int``/``Float``/``Bool`` on a constant): coremltools calls ``int(x.val)`` on a
  one-element array of shape ``[1]``, which numpy >= 2.4 refuses ("only 0-dimensional arrays can be converted
  to Python scalars"); transformers' traced models hit it. The patch folds such constants with ``.item()``.
- ``aten::new_ones`` (transformers' mask code) has no converter: registered here as ``fill(shape, 1)``, the
  ones of the ``new_zeros`` converter coremltools does have.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

_APPLIED = False


def _cast_with_item(original: Any) -> Any:
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    @functools.wraps(original)
    def cast(context: Any, node: Any, dtype: Any, dtype_name: str) -> Any:
        x = _get_inputs(context, node, expected=1)[0]
        value = x.val if x.can_be_folded_to_const() else None
        if isinstance(value, np.ndarray) and value.ndim > 0 and value.size == 1:
            context.add(mb.const(val=dtype(value.item()), name=node.name), node.name)
            return None
        return original(context, node, dtype, dtype_name)

    cast.mlfarm_patch = True  # type: ignore[attr-defined]
    return cast


def _new_ones(context: Any, node: Any) -> None:
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs

    shape = _get_inputs(context, node)[1]
    if isinstance(shape, list):  # a dynamic size arrives as a list of scalars
        shape = mb.concat(values=shape, axis=0)
    context.add(mb.fill(shape=shape, value=1.0, name=node.name))


def apply() -> None:
    """Install the patches (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    if not getattr(ops._cast, "mlfarm_patch", False):
        ops._cast = _cast_with_item(ops._cast)
    if _TORCH_OPS_REGISTRY.get_func("new_ones") is None:
        _TORCH_OPS_REGISTRY.register_func(_new_ones, torch_alias=["new_ones"])
    _APPLIED = True
