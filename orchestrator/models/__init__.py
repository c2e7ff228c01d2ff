"""Model sources and component export: where weights come from and how a component becomes a module.

    from orchestrator.models import load_source
    src = load_source(spec.model)                 # builtin:tiny-sd | builtin:sd15-unet-random | hf://o/r@rev | dir
    src.id, src.revision                          # "builtin:tiny-sd", "seed0-v1"
    src.components()                              # ("text_encoder", "unet", "vae_decoder")
    module = src.module("unet", attention="split_einsum_v2")   # fresh fp32 eval() module; forward -> tuple
    src.example_inputs("unet", spec.model.components["unet"], seed=spec.measure.seed)

Importing this package is cheap (no torch): torch, diffusers and transformers are imported when a module is
built. Importing it also registers the model check in ``orchestrator.spec.loader.SPEC_CHECKS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.errors import Problem, SpecError
from orchestrator.models.builtin import BuiltinSource
from orchestrator.models.checks import check_model
from orchestrator.models.components import COMPONENTS, ComponentFacts, ComponentKind
from orchestrator.models.configs import BUILTINS
from orchestrator.models.folder import FolderSource
from orchestrator.models.hub import HubOptions, HubSource, parse_hub
from orchestrator.models.package import PackageSource, open_package_source
from orchestrator.models.package_spec import resolve
from orchestrator.models.python import PythonSource
from orchestrator.models.source import InputPlan, ModelSource, SourceProblem
from orchestrator.spec.loader import SPEC_CHECKS, SPEC_RESOLVERS
from orchestrator.spec.model import ComponentSpec, ModelSpec, ReleaseSpec

# Built-ins defined as Python modules (factories) rather than library configs.
PYTHON_BUILTINS = {"tiny-cnn": "python:orchestrator.models.tiny_cnn:build"}

__all__ = ["BUILTINS", "COMPONENTS", "BuiltinSource", "ComponentFacts", "ComponentKind", "FolderSource",
           "HubOptions", "HubSource", "InputPlan", "ModelSource", "PackageSource", "PythonSource", "SourceProblem",
           "load_source", "open_source"]


def open_source(text: str, *, relative_to: Path | None = None, env: Mapping[str, str] | None = None,
                components: Sequence[str] | Mapping[str, ComponentSpec] = ()) -> ModelSource:
    """Parse a ``model.source`` string; raise SourceProblem (message + fix) when it cannot be used.

    ``components`` (the spec's components, or their names) names the component of a single ``.mlpackage`` or
    a ``python:`` factory's single module, and gives a ``python:`` source the inputs it probes outputs with."""
    specs = components if isinstance(components, Mapping) else None
    if text.startswith("python:"):
        return PythonSource(text, relative_to, specs)
    if text.removeprefix("builtin:") in PYTHON_BUILTINS and text.startswith("builtin:"):
        source = PythonSource(PYTHON_BUILTINS[text.removeprefix("builtin:")], None, specs)
        source.id = text
        return source
    if text.startswith("builtin:"):
        return BuiltinSource.named(text.removeprefix("builtin:"))
    if text.startswith("hf://"):
        repo, revision = parse_hub(text)
        return HubSource(repo, revision, HubOptions.from_env(env))
    if "://" in text:
        raise SourceProblem(f"unknown source scheme in {text!r}",
                            "use builtin:NAME, hf://ORG/REPO@REVISION or a local folder path")
    path = Path(text).expanduser()
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    package = open_package_source(path.resolve(), tuple(components))
    if package is not None:
        return package
    if not path.is_dir():
        raise SourceProblem(f"{text!r} is neither a built-in model, a Hub repo nor an existing folder ({path})",
                            f"use one of {', '.join('builtin:' + n for n in BUILTINS)}, hf://ORG/REPO@REVISION, "
                            "the path of a diffusers pipeline folder, a .mlpackage or a folder of .mlpackage files")
    return FolderSource(path.resolve())


def load_source(model: ModelSpec | str, *, relative_to: Path | None = None, file: str | None = None,
                env: Mapping[str, str] | None = None) -> ModelSource:
    """The source of ``model`` (a spec's ``model`` section or its ``source`` string).

    Local folders are resolved against ``relative_to`` (the spec's folder). Raises SpecError naming
    ``model.source`` (in ``file``) when the source cannot be opened.
    """
    text = model if isinstance(model, str) else model.source
    specs: Mapping[str, ComponentSpec] = {} if isinstance(model, str) else model.components
    try:
        return open_source(text, relative_to=relative_to, env=env, components=specs)
    except SourceProblem as exc:
        raise SpecError([Problem(file or "release spec", "model.source", exc.message, exc.fix)]) from None


def resolve_model(spec: ReleaseSpec, file: str) -> ReleaseSpec:
    """SPEC_RESOLVERS entry: a spec over prebuilt packages gets its components' inputs from the packages."""
    source = open_source(spec.model.source, relative_to=Path(file).parent, components=spec.model.components)
    return resolve(spec, source) if isinstance(source, PackageSource) else spec


if check_model not in SPEC_CHECKS:
    SPEC_CHECKS.append(check_model)
if resolve_model not in SPEC_RESOLVERS:
    SPEC_RESOLVERS.append(resolve_model)
