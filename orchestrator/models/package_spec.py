"""A release spec against prebuilt packages: what it may say about them, and the complete spec it stands for.

``package_problems`` is the check (one Problem per thing wrong, naming the key and the fix); ``resolve``
fills ``model.components`` from the packages' own descriptions, so every later stage (build, analyze, plan,
run) sees the same complete component inputs it sees for a converted model:

    model: {source: Classifier.mlpackage}            # components omitted
    -> model.components == {"Classifier": ComponentSpec({"image": TensorSpec((1, 3, 64, 64), "float32")})}
"""

from __future__ import annotations

import dataclasses

from orchestrator.errors import Problem
from orchestrator.models.package import PackageSource
from orchestrator.models.source import SourceProblem
from orchestrator.spec.model import ComponentSpec, ReleaseSpec, TensorSpec


def _component_problems(source: PackageSource, name: str, spec: ComponentSpec, file: str) -> list[Problem]:
    base = f"model.components.{name}"
    try:
        signature = source.signature(name)
    except SourceProblem as exc:
        return [Problem(file, base, exc.message, exc.fix)]
    problems = []
    described = ", ".join(f"{i.name} {i.describe()}" for i in signature.inputs)
    for given in spec.inputs:
        if signature.input(given) is None:
            problems.append(Problem(file, f"{base}.inputs.{given}", f"{source.prebuilt(name).name} has no input "
                                    f"{given!r}", f"its inputs are: {described}"))
    for package_input in signature.inputs:
        key = f"{base}.inputs.{package_input.name}"
        tensor = spec.inputs.get(package_input.name)
        if package_input.dtype is None:
            problems.append(Problem(file, key, "the input is not a float32/float16/int32 multiarray",
                                    "convert the model with ct.TensorType inputs of one of those dtypes"))
        elif tensor is None and package_input.ranges is not None:
            problems.append(Problem(file, f"{key}.shape", f"the package's shape is flexible "
                                    f"({package_input.describe()}): mlfarm measures at one fixed shape",
                                    f"give one, e.g. {package_input.name}: {{shape: {list(package_input.shape)}}}"))
        elif package_input.dtype == "int32" and (tensor is None or tensor.high is None):
            problems.append(Problem(file, f"{key}.high", "an int32 input needs the bound of its seeded values "
                                    "(token ids or class labels past the table size crash the model)",
                                    f"give it, e.g. {package_input.name}: {{shape: {list(package_input.shape)}, "
                                    "high: VOCAB_SIZE}"))
        elif tensor is not None and not package_input.allows(tuple(tensor.shape)):
            fixed = "fixed" if package_input.fixed else "allowed"
            problems.append(Problem(file, f"{key}.shape", f"{list(tensor.shape)} is not a shape the package "
                                    f"accepts ({fixed}: {package_input.describe()})",
                                    f"leave the shape out or use {package_input.describe()}"))
    return problems


def package_problems(spec: ReleaseSpec, source: PackageSource, file: str) -> list[Problem]:
    """Everything wrong with ``spec`` for these packages (names, inputs, shapes, the variant axes)."""
    problems = [Problem(file, f"model.components.{name}", f"{source.id} has no package {name}.mlpackage",
                        f"its packages: {', '.join(source.components())}")
                for name in spec.model.components if name not in source.components()]
    if len(source.packages) == 1 and len(spec.model.components) > 1:
        problems.append(Problem(file, "model.components", "a single .mlpackage is one component",
                                "list one component (its name is yours to choose), or point model.source at a "
                                "folder of packages"))
    if problems:
        return problems
    for name in source.components():
        problems += _component_problems(source, name, spec.model.components.get(name, ComponentSpec()), file)
    if problems:
        return problems
    return _axis_problems(spec, source, file)


def _axis_problems(spec: ReleaseSpec, source: PackageSource, file: str) -> list[Problem]:
    """A package has its own precision and attention: the spec cannot ask for others."""
    problems = []
    own = {source.signature(name).precision for name in source.components()}
    if len(spec.variants.precision) != 1 or spec.variants.precision[0] not in own:
        problems.append(Problem(file, "variants.precision", f"the packages compute in {' and '.join(sorted(own))}; "
                                f"mlfarm cannot change a prebuilt package's precision",
                                f"set variants.precision: [{sorted(own)[0]}]"))
    if len(spec.variants.attention) != 1:
        problems.append(Problem(file, "variants.attention", "a prebuilt package has its own attention",
                                "list one attention value (it only labels the variant id)"))
    if any(p.precision not in spec.variants.precision or p.attention not in spec.variants.attention
           for p in spec.variants.include):
        problems.append(Problem(file, "variants.include", "an included point asks for another precision or "
                                "attention than the package's", "include only other weights"))
    return problems


def resolve(spec: ReleaseSpec, source: PackageSource) -> ReleaseSpec:
    """``spec`` with every package's inputs filled in from its description (the spec's shapes win)."""
    components = {}
    for name in source.components():
        given = spec.model.components.get(name, ComponentSpec())
        inputs = {}
        for package_input in source.signature(name).inputs:
            tensor = given.inputs.get(package_input.name)
            shape = tuple(tensor.shape) if tensor is not None else package_input.shape
            high = tensor.high if tensor is not None else None
            inputs[package_input.name] = TensorSpec(shape, package_input.dtype or "float32", high)  # type: ignore[arg-type]
        components[name] = ComponentSpec(inputs)
    model = dataclasses.replace(spec.model, components=components)
    return dataclasses.replace(spec, model=model)
