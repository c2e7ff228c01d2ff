"""Importing a prebuilt ``.mlpackage``: the base program its variants are compressed from (no torch export).

The package is loaded as it is (``skip_model_load``: no Core ML runtime here) and is the ``none`` variant.
A variant whose scheme needs a newer opset than the package's (``int4-b32`` and ``palette4-g16`` need iOS 18)
is compressed from a copy re-serialised for that target: coremltools re-emits the package's own MIL program
with ``minimum_deployment_target`` raised and fp32 compute precision, so no op or weight changes on the way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator.build.convert import Converted
from orchestrator.build.logs import captured
from orchestrator.build.targets import DeploymentTarget
from orchestrator.errors import BuildError
from orchestrator.models.package import SPEC_VERSION_IOS


def package_target(model: Any) -> DeploymentTarget:
    """The deployment target of a loaded package's opset."""
    return DeploymentTarget(SPEC_VERSION_IOS.get(int(model.get_spec().specificationVersion), 18))


def _retarget(model: Any, target: DeploymentTarget) -> Any:
    """The same program re-serialised for ``target`` (a newer opset)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    spec = model.get_spec()
    program = load_milproto(spec, spec.specificationVersion, str(model.weights_dir))
    return ct.convert(program, convert_to="mlprogram", minimum_deployment_target=target.coremltools(),
                      compute_precision=ct.precision.FLOAT32, skip_model_load=True)


def import_package(path: Path, component: str, precision: str, target: DeploymentTarget) -> Converted:
    """The package at ``path`` as the base of ``component``'s variants for ``target`` (raised to the package's own
    target when that is newer); BuildError naming the package and the target on failure."""
    import coremltools as ct

    start = time.perf_counter()
    with captured() as log:
        try:
            model = ct.models.MLModel(str(path), skip_model_load=True)
            own = package_target(model)
            if own < target:
                model = _retarget(model, target)
            else:
                target = own
        except Exception as exc:  # coremltools raises ValueError, RuntimeError, protobuf errors, ...
            detail = log.tail(4)
            raise BuildError(f"cannot import {path} as {component} for {target.name}: {type(exc).__name__}: {exc}"
                             + (f"\n{detail}" if detail else ""),
                             fix="check the package loads with coremltools (ct.models.MLModel(path)); rerun with "
                                 "--debug for the traceback") from exc
    model.user_defined_metadata.pop("com.github.apple.coremltools.conversion_date", None)
    return Converted(component, "package", precision, target, model, time.perf_counter() - start)
