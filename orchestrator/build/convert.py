"""Core ML conversion of an exported component: an ML program at fixed shapes, one precision, one target.

Inputs keep the spec's dtypes and names; outputs are named after the component kind and are fp32 unless
every float input is fp16 (so a variant's precision changes its compute, not its interface, and the
harness feeds every variant of a component the same inputs). The model is not compiled or loaded here
(``skip_model_load``): on Linux Core ML cannot load it, and on a Mac compiling belongs to the device step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.build.export import Exported
from orchestrator.build.logs import captured
from orchestrator.build.targets import DeploymentTarget
from orchestrator.errors import BuildError
from orchestrator.models import COMPONENTS
from orchestrator.spec.model import ComponentSpec


@dataclass
class Converted:
    """A converted base program: every compression variant of (component, attention, precision, target)
    is derived from ``model`` without converting again."""

    component: str
    attention: str
    precision: str
    target: DeploymentTarget
    model: Any  # coremltools.models.MLModel
    seconds: float


def _io(spec: ComponentSpec, exported: Exported) -> tuple[list[Any], list[Any]]:
    import coremltools as ct

    kind = COMPONENTS.get(exported.component)
    input_names = exported.input_names or (kind.input_names if kind else ())
    output_names = exported.output_names or (kind.output_names if kind else ())
    inputs = [ct.TensorType(name=n, shape=tuple(spec.inputs[n].shape), dtype=np.dtype(spec.inputs[n].dtype).type)
              for n in input_names]
    floats = [spec.inputs[n].dtype for n in input_names if spec.inputs[n].dtype != "int32"]
    out_dtype = np.float16 if floats and all(d == "float16" for d in floats) else np.float32
    outputs = [ct.TensorType(name=n, dtype=out_dtype) for n in output_names]
    return inputs, outputs


def convert(exported: Exported, spec: ComponentSpec, precision: str, target: DeploymentTarget) -> Converted:
    """ct.convert to an mlprogram; BuildError naming the component and variant axes on failure."""
    import coremltools as ct

    from orchestrator.build import ct_patches

    ct_patches.apply()

    start = time.perf_counter()
    with captured() as log:
        inputs, outputs = _io(spec, exported)
        try:
            model = ct.convert(
                exported.program, source="pytorch", convert_to="mlprogram", inputs=inputs, outputs=outputs,
                minimum_deployment_target=target.coremltools(),
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                skip_model_load=True,
            )
        except Exception as exc:  # coremltools raises ValueError, RuntimeError, NotImplementedError, ...
            detail = log.tail(4)
            raise BuildError(
                f"coremltools could not convert {exported.component} ({precision}, {exported.attention} attention, "
                f"{target.name}): {type(exc).__name__}: {exc}" + (f"\n{detail}" if detail else ""),
                fix="an unsupported op usually means a model outside the SD 1.x/2.x families; rerun with --debug "
                    "and check the coremltools version in `mlfarm artifacts show`") from exc
    # The conversion date would make identical rebuilds differ byte for byte; the manifest records the time.
    model.user_defined_metadata.pop("com.github.apple.coremltools.conversion_date", None)
    return Converted(exported.component, exported.attention, precision, target, model,
                     time.perf_counter() - start)
