"""MIL op kernels, one module per family; importing this package fills ``KERNELS``.

To add an op: write ``@KERNELS.register("op_type") def op_type(c: OpCall) -> torch.Tensor`` in the module of its
family (read the op's definition in ``coremltools/converters/mil/mil/ops/defs/iOS*/`` for exact semantics), and a
test in ``tests/mil/test_kernels_<family>.py`` against torch or numpy.
"""

from orchestrator.mil.kernels import (  # noqa: F401 - imported for their registrations
    compression,
    conv,
    elementwise,
    index,
    linalg,
    norm,
    reduce,
    resize,
    shape,
)
from orchestrator.mil.kernels.registry import KERNELS, KernelRegistry, OpCall

__all__ = ["KERNELS", "KernelRegistry", "OpCall"]
