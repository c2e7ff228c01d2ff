"""The release-spec check contributed by model sources: component names and input shapes.

Registered in ``orchestrator.spec.loader.SPEC_CHECKS`` when ``orchestrator.models`` is imported, so
``mlfarm spec check`` and every command that loads a spec report, for example:

    tiny.yaml: model.components.unet.inputs.sample.shape: latent height 33 is not a multiple of 2 (the UNet
    downsamples 1 time(s)); fix: use a latent size divisible by 2, e.g. 32

Sources that cannot be inspected offline (a Hub repo not in the cache) get the checks that need no config:
names, ranks, dtypes and batch agreement.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from orchestrator.errors import Problem
from orchestrator.models.components import COMPONENTS, ComponentFacts, ComponentKind
from orchestrator.models.source import ModelSource, SourceProblem
from orchestrator.spec.model import ComponentSpec, ReleaseSpec

Issue = tuple[str, str, str]  # (key suffix, message, fix)


def _text_encoder(facts: ComponentFacts | None, inputs: ComponentSpec) -> list[Issue]:
    tokens = inputs.inputs["input_ids"].shape[1]
    if facts is not None and facts.max_positions is not None and tokens > facts.max_positions:
        return [("inputs.input_ids.shape", f"{tokens} tokens exceed the text encoder's {facts.max_positions} "
                 "position embeddings", f"use at most {facts.max_positions} tokens, e.g. [1, {facts.max_positions}]")]
    return []


def _unet(facts: ComponentFacts | None, inputs: ComponentSpec) -> list[Issue]:
    sample = inputs.inputs["sample"].shape
    timestep = inputs.inputs["timestep"].shape
    context = inputs.inputs["encoder_hidden_states"].shape
    issues: list[Issue] = []
    if timestep[0] not in (1, sample[0]):
        issues.append(("inputs.timestep.shape", f"batch {timestep[0]} does not match the sample batch {sample[0]}",
                       f"use [{sample[0]}]"))
    if context[0] != sample[0]:
        issues.append(("inputs.encoder_hidden_states.shape", f"batch {context[0]} does not match the sample "
                       f"batch {sample[0]}", f"use [{sample[0]}, {context[1]}, {context[2]}]"))
    if facts is None:
        return issues
    if facts.unsupported:
        issues.append(("", facts.unsupported, "use a Stable Diffusion 1.x/2.x UNet"))
    if facts.in_channels is not None and sample[1] != facts.in_channels:
        issues.append(("inputs.sample.shape", f"{sample[1]} latent channels, the UNet takes {facts.in_channels}",
                       f"use [{sample[0]}, {facts.in_channels}, {sample[2]}, {sample[3]}]"))
    down = facts.downsample or 1
    for axis, size in (("height", sample[2]), ("width", sample[3])):
        if size % down:
            good = max(down, size // down * down)
            issues.append(("inputs.sample.shape", f"latent {axis} {size} is not a multiple of {down} (the UNet "
                           f"halves it {down.bit_length() - 1} time(s))", f"use a multiple of {down}, e.g. {good}"))
    if facts.cross_attention_dim is not None and context[2] != facts.cross_attention_dim:
        issues.append(("inputs.encoder_hidden_states.shape", f"width {context[2]} differs from the UNet's "
                       f"cross_attention_dim {facts.cross_attention_dim}",
                       f"use [{context[0]}, {context[1]}, {facts.cross_attention_dim}]"))
    return issues


def _vae_decoder(facts: ComponentFacts | None, inputs: ComponentSpec) -> list[Issue]:
    z = inputs.inputs["z"].shape
    if facts is not None and facts.in_channels is not None and z[1] != facts.in_channels:
        return [("inputs.z.shape", f"{z[1]} latent channels, the VAE decoder takes {facts.in_channels}",
                 f"use [{z[0]}, {facts.in_channels}, {z[2]}, {z[3]}]")]
    return []


SHAPE_CHECKS: dict[str, Callable[[ComponentFacts | None, ComponentSpec], list[Issue]]] = {
    "text_encoder": _text_encoder, "unet": _unet, "vae_decoder": _vae_decoder,
}


def _signature(kind: ComponentKind, spec: ComponentSpec) -> list[Issue]:
    """Names, ranks and dtypes: everything that needs no config."""
    issues: list[Issue] = []
    expected = ", ".join(f"{r.name} (rank {r.rank})" for r in kind.inputs)
    for name in spec.inputs:
        if kind.role(name) is None:
            issues.append((f"inputs.{name}", f"{kind.name} has no input {name!r}", f"its inputs are: {expected}"))
    for role in kind.inputs:
        tensor = spec.inputs.get(role.name)
        if tensor is None:
            issues.append(("inputs", f"missing input {role.name!r} ({role.meaning})", f"its inputs are: {expected}"))
        elif len(tensor.shape) != role.rank:
            issues.append((f"inputs.{role.name}.shape", f"expected rank {role.rank} {role.meaning}, got "
                           f"{list(tensor.shape)}", f"give {role.rank} dimensions"))
        elif tensor.dtype not in role.dtypes:
            issues.append((f"inputs.{role.name}.dtype", f"{role.name} must be {' or '.join(role.dtypes)}, got "
                           f"{tensor.dtype}", f"set dtype: {role.dtypes[0]}"))
    return issues


def check_component(source: ModelSource, name: str, spec: ComponentSpec) -> list[Issue]:
    if name not in COMPONENTS:
        return [("", f"unknown component {name!r}", f"known components: {', '.join(COMPONENTS)}")]
    if name not in source.components():
        return [("", f"{source.id} has no {name}", f"its components: {', '.join(source.components())}")]
    issues = _signature(COMPONENTS[name], spec)
    if issues:
        return issues
    try:
        facts = source.facts(name)
    except SourceProblem as exc:
        return [("", exc.message, exc.fix or "")]
    return SHAPE_CHECKS[name](facts, spec)


def check_model(spec: ReleaseSpec, file: str) -> list[Problem]:
    """SPEC_CHECKS entry: the model source opens, and every component and input fits it."""
    from orchestrator.models import open_source
    from orchestrator.models.package import PackageSource
    from orchestrator.models.package_spec import package_problems
    from orchestrator.models.python import PythonSource

    try:
        source = open_source(spec.model.source, relative_to=Path(file).parent, components=spec.model.components)
    except SourceProblem as exc:
        return [Problem(file, "model.source", exc.message, exc.fix)]
    if isinstance(source, PackageSource):
        return package_problems(spec, source, file)
    if isinstance(source, PythonSource):
        return python_problems(spec, source, file)
    if not spec.model.components:
        return [Problem(file, "model.components", f"{source.id} needs its components and their input shapes",
                        f"list some of: {', '.join(source.components())}, each with "
                        "inputs: {NAME: {shape: [...]}}")]
    problems = []
    for name, component in spec.model.components.items():
        base = f"model.components.{name}"
        for suffix, message, fix in check_component(source, name, component):
            problems.append(Problem(file, f"{base}.{suffix}" if suffix else base, message, fix or None))
    return problems


def python_problems(spec: ReleaseSpec, source: ModelSource, file: str) -> list[Problem]:
    """A ``python:`` factory: it runs and returns modules, every component is one of them and declares inputs."""
    try:
        names = source.components()
    except SourceProblem as exc:
        return [Problem(file, "model.source", exc.message, exc.fix)]
    problems = [Problem(file, f"model.components.{name}", f"{source.id} returned no module {name!r}",
                        f"its modules: {', '.join(names)}") for name in spec.model.components if name not in names]
    for name in names:
        given = spec.model.components.get(name)
        if given is None or not given.inputs:
            problems.append(Problem(file, f"model.components.{name}.inputs", f"{name} needs its inputs declared "
                                    "(names of forward()'s arguments, with shapes)",
                                    f"e.g. {name}: {{inputs: {{x: {{shape: [1, 3, 64, 64]}}}}}}"))
    return problems
