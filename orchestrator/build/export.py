"""PyTorch export of one component with one attention implementation: the input to every conversion.

Two exporters, because the two libraries fail in opposite ways with torch 2.13 and coremltools 9:
diffusers models (UNet, VAE) go through ``torch.export`` (their TorchScript trace hits an ``int`` op that
coremltools cannot convert), and the program is decomposed to the ATEN dialect (``run_decompositions``)
because coremltools refuses the TRAINING dialect. transformers' CLIP text encoder is the reverse:
``torch.export`` leaves an ``alias`` node coremltools cannot convert, while ``torch.jit.trace`` works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.build.logs import captured
from orchestrator.errors import BuildError
from orchestrator.models import ModelSource, SourceProblem
from orchestrator.spec.model import ComponentSpec


@dataclass
class Exported:
    """An exported program, shared by every (precision, target) conversion of one (component, attention)."""

    component: str
    attention: str
    exporter: str
    program: Any  # torch.export.ExportedProgram or torch.jit.ScriptModule
    seconds: float
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()


def _tensors(inputs: dict[str, np.ndarray], names: tuple[str, ...]) -> tuple[Any, ...]:
    import torch

    # The PyTorch module is fp32; Core ML input dtypes are set at conversion, not here.
    return tuple(torch.from_numpy(inputs[n].astype(np.float32) if inputs[n].dtype.kind == "f" else inputs[n])
                 for n in names)


def export_component(source: ModelSource, component: str, spec: ComponentSpec, attention: str,
                     *, seed: int = 0) -> Exported:
    """Build the module with ``attention`` applied and export it; BuildError (component, attention, fix) on failure."""
    import torch

    start = time.perf_counter()
    where = f"{component} ({attention} attention) from {source.id}"
    with captured() as log:
        try:
            module = source.module(component, attention)
            names = source.input_names(component)
            example = _tensors(source.example_inputs(component, spec, seed), names)
            exporters = source.exporters(component)
        except SourceProblem as exc:
            raise BuildError(f"cannot load {where}: {exc.message}", fix=exc.fix) from exc
        except Exception as exc:  # library loaders raise OSError, ValueError, safetensors errors, ...
            raise BuildError(f"cannot load {where}: {type(exc).__name__}: {exc}",
                             fix="check the model files (re-save or re-download the pipeline)") from exc
        failures = []
        for exporter in exporters:
            try:
                with torch.no_grad():
                    program = _export(exporter, module, example)
                return Exported(component, attention, exporter, program, time.perf_counter() - start, names,
                                source.output_names(component))
            except Exception as exc:  # torch raises many unrelated types; all mean "this model does not export"
                failures.append(f"{exporter}: {type(exc).__name__}: {exc}")
                last: Exception = exc
        detail = log.tail(4)
        raise BuildError(f"exporting {where} failed ({' then '.join(exporters)}):\n  " + "\n  ".join(failures)
                         + (f"\n{detail}" if detail else ""),
                         fix="check the input shapes in the spec (`mlfarm spec check SPEC`); rerun with "
                             "--debug for the traceback") from last


def _export(exporter: str, module: Any, example: tuple[Any, ...]) -> Any:
    import torch

    if exporter == "jit.trace":
        return torch.jit.trace(module, example, strict=False)
    return torch.export.export(module, example).run_decompositions({})
