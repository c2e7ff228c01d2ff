"""Read an ``.mlpackage`` into a ``Program`` on any OS (no Core ML runtime needed).

coremltools' milproto loader turns the package's protobuf spec plus its ``weights/`` folder into a
coremltools MIL program, with every tensor's shape and dtype inferred. ``from_mil`` then copies that into
mlfarm's own read-only ``Program`` (op list, types, constants), so nothing downstream touches coremltools.

This module is the boundary to coremltools' loader: whatever it raises on a missing, truncated or corrupt
package becomes an ``ArtifactError`` that names the package and says how to get a good one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import ArtifactError, UnsupportedOpError
from orchestrator.mil.program import Arg, Op, Program, TensorType

_REBUILD = "rebuild it (`mlfarm build SPEC`) or convert it again with coremltools; check the copy is complete"


def load(path: str | Path, *, function: str = "main") -> Program:
    """Load the ML program of an ``.mlpackage``; raises ``ArtifactError`` if it is not a readable one."""
    package = Path(path)
    if not package.exists():
        raise ArtifactError(f"{package}: no such Core ML package", path=package,
                            fix="pass the path of an .mlpackage folder or an artifact id (`mlfarm analyze SPEC`)")
    if not (package.is_dir() and (package / "Manifest.json").is_file()):
        raise ArtifactError(f"{package}: not an .mlpackage (a folder with Manifest.json)", path=package,
                            fix="pass an .mlpackage folder; ML programs saved as a single .mlmodel file have no "
                                "weights and cannot be loaded")
    spec, weights_dir = _read_spec(package)
    if spec.WhichOneof("Type") != "mlProgram":
        kind = spec.WhichOneof("Type") or "empty"
        raise ArtifactError(f"{package}: a '{kind}' model, not an ML program", path=package,
                            fix="convert with convert_to='mlprogram' (the default for iOS 15+ targets)")
    mil = _read_program(package, spec, weights_dir)
    if function not in mil.functions:
        raise ArtifactError(f"{package}: no function '{function}' (has: {', '.join(mil.functions)})", path=package,
                            fix="pass one of the functions the package has")
    names = {
        "inputs": [f.name for f in spec.description.input],
        "outputs": [f.name for f in spec.description.output],
    }
    return from_mil(mil, source=str(package), function=function, feature_names=names)


def _read_spec(package: Path) -> tuple[Any, str]:
    _quiet_coremltools()
    import coremltools as ct

    try:
        model = ct.models.MLModel(str(package), skip_model_load=True)
        return model.get_spec(), str(model.weights_dir)
    except Exception as exc:
        raise ArtifactError(f"{package}: cannot read the Core ML package: {_reason(exc)}", path=package,
                            fix=_REBUILD) from exc


def _read_program(package: Path, spec: Any, weights_dir: str) -> Any:
    from coremltools.converters.mil.frontend.milproto import load as milproto

    try:
        return milproto.load(spec, spec.specificationVersion, weights_dir)
    except NotImplementedError as exc:
        raise UnsupportedOpError(_reason(exc), artifact=str(package),
                                 fix="only plain ML programs (no custom layers) can be loaded") from exc
    except Exception as exc:
        raise ArtifactError(f"{package}: cannot load the ML program (truncated or corrupt weights?): {_reason(exc)}",
                            path=package, fix=_REBUILD) from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no details'}"


def _quiet_coremltools() -> None:
    # coremltools warns at import time about its macOS-only runtime and untested torch versions; on Linux that
    # is expected and would bury mlfarm's own output. The CLI sends it to its log file (cli/_log.py); a library
    # caller without logging set up would get it on stderr, so it is dropped there.
    if not logging.getLogger().handlers:
        logging.getLogger("coremltools").setLevel(logging.ERROR)


def from_mil(mil: Any, *, source: str = "<in-memory program>", function: str = "main",
             feature_names: Mapping[str, list[str]] | None = None) -> Program:
    """Copy one function of a coremltools MIL program into a ``Program``."""
    from coremltools.converters.mil.mil import types as ct_types

    func = mil.functions[function]
    rename = _feature_renames(func, feature_names or {})
    builder = _Builder(source, rename, ct_types)
    for var in func.inputs.values():
        builder.add_type(var)
    for op in func.operations:
        builder.add_op(op)
    return Program(
        source=source,
        function=function,
        opset=str(getattr(func, "opset_version", "") or ""),
        inputs=tuple(builder.name(v) for v in func.inputs.values()),
        outputs=tuple(builder.name(v) for v in func.outputs),
        types=builder.types,
        constants=builder.constants,
        ops=tuple(builder.ops),
    )


def _feature_renames(func: Any, names: Mapping[str, list[str]]) -> dict[str, str]:
    """Var name -> model feature name, where the package's description names a feature differently."""
    rename: dict[str, str] = {}
    for key, variables in (("inputs", list(func.inputs.values())), ("outputs", list(func.outputs))):
        wanted = names.get(key) or []
        if len(wanted) == len(variables):
            rename.update({v.name: n for v, n in zip(variables, wanted, strict=True) if v.name != n})
    return rename


class _Builder:
    """Accumulates types, constants and ops while walking a coremltools function once."""

    def __init__(self, source: str, rename: dict[str, str], ct_types: Any) -> None:
        self.source = source
        self.rename = rename
        self.ct_types = ct_types
        self.types: dict[str, TensorType] = {}
        self.constants: dict[str, Any] = {}
        self.ops: list[Op] = []

    def name(self, var: Any) -> str:
        return self.rename.get(var.name, var.name)

    def add_type(self, var: Any) -> None:
        t = self.ct_types
        if not (t.is_tensor(var.sym_type) or t.is_scalar(var.sym_type) or t.is_str(var.sym_type)):
            raise UnsupportedOpError(f"{var.op.op_type if var.op else 'input'} (value of type {var.sym_type})",
                                     artifact=self.source, fix="only tensor-valued programs can be executed")
        dtype = "string" if t.is_str(var.dtype) else t.builtin_to_string(var.dtype)
        shape = tuple(d if isinstance(d, int | np.integer) else None for d in var.shape)
        self.types[self.name(var)] = TensorType(tuple(None if d is None else int(d) for d in shape), dtype)

    def add_op(self, op: Any) -> None:
        if op.blocks:
            raise UnsupportedOpError(op.op_type, artifact=self.source,
                                     fix="control flow (cond, while_loop) is not supported by mlfarm's executor")
        for out in op.outputs:
            self.add_type(out)
        if op.op_type == "const":
            value = op.outputs[0].val
            self.constants[self.name(op.outputs[0])] = value if value is not None else op.outputs[0].sym_val
            return
        inputs: dict[str, Arg] = {}
        for key, value in op.inputs.items():
            inputs[key] = tuple(self.name(v) for v in value) if isinstance(value, list | tuple) else self.name(value)
        self.ops.append(Op(type=op.op_type, name=op.name or self.name(op.outputs[0]), inputs=inputs,
                           outputs=tuple(self.name(o) for o in op.outputs), defaults=_defaults(op)))


def _defaults(op: Any) -> dict[str, Any]:
    """Values coremltools assumes for optional inputs the program omits (e.g. conv's ``dilations``)."""
    try:
        defaults = op.default_inputs()
    except Exception:
        return {}
    out: dict[str, Any] = {}
    for key, value in defaults.items():
        if key in op.inputs:
            continue
        out[key] = value.val if hasattr(value, "val") else value
    return out
