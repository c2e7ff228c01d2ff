"""Model sources: where a release's weights come from, and how each component becomes a PyTorch module.

    builtin:NAME            configs shipped with mlfarm, seeded random weights (orchestrator/models/configs.py)
    hf://org/repo@REVISION  a diffusers pipeline on the Hugging Face Hub, pinned to a revision
    PATH                    a local diffusers pipeline folder (with model_index.json); relative to the spec

Lifecycle: ``load_source`` is cheap (no torch, no download) so that cache hits stay cheap; it can be asked
for ``id``, ``revision``, ``cache_identity``, ``facts``. ``module()`` builds or loads the PyTorch model on
demand and returns a fresh module on every call (attention changes are applied in place, so modules are never
shared between callers). ``weights_hash`` reads weights and is meant for build time, not cache lookups.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orchestrator.harness.inputs import make_input
from orchestrator.models.components import COMPONENTS, ComponentFacts, ComponentKind, Exporter

if TYPE_CHECKING:
    from torch import nn

    from orchestrator.spec.model import ComponentSpec


class SourceProblem(ValueError):
    """A source string or folder that cannot be used; ``fix`` says what to do. Turned into SpecError upstream."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass(frozen=True)
class InputPlan:
    """How one example input is generated: what the harness needs to reproduce it (make_input arguments)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    seed: int
    high: int | None


def kind(component: str) -> ComponentKind:
    try:
        return COMPONENTS[component]
    except KeyError:
        raise SourceProblem(f"unknown component {component!r}",
                            f"use one of: {', '.join(COMPONENTS)}") from None


class ModelSource(ABC):
    """One model a release is built from; see the module docstring for its lifecycle."""

    id: str
    revision: str
    # What ``reference`` compares against, recorded in each artifact's quality section.
    reference_label = "pytorch-fp32"

    @abstractmethod
    def components(self) -> tuple[str, ...]:
        """The components this source provides, in pipeline order."""

    @abstractmethod
    def facts(self, component: str) -> ComponentFacts | None:
        """Shape-relevant config numbers, or None when they cannot be read without downloading."""

    @abstractmethod
    def _load(self, component: str) -> nn.Module:
        """The library model (CLIPTextModel, UNet2DConditionModel, AutoencoderKL) in fp32, eval mode."""

    @abstractmethod
    def weights_hash(self, component: str) -> str:
        """sha256 identifying the component's weights (reads them; build time only)."""

    def cache_identity(self, component: str) -> str:
        """A cheap string that changes whenever the component's weights may have changed (build cache key)."""
        return self.revision

    def input_names(self, component: str) -> tuple[str, ...]:
        return kind(component).input_names

    def output_names(self, component: str) -> tuple[str, ...]:
        return kind(component).output_names

    def exporters(self, component: str) -> tuple[Exporter, ...]:
        """The exporters to try, in order (the next is the fallback when one fails)."""
        return (kind(component).exporter,)

    def module(self, component: str, attention: str = "original") -> nn.Module:
        """A fresh fp32 eval() module whose forward(**inputs) returns a tuple in ``output_names`` order."""
        from orchestrator.models.attention import apply_attention
        from orchestrator.models.wrappers import wrap

        model = self._load(kind(component).name)
        apply_attention(model, attention)
        return wrap(component, model)

    def prebuilt(self, component: str) -> Path | None:
        """The Core ML package this component is imported from instead of being converted (None: convert)."""
        return None

    def reference(self, component: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Reference outputs on ``inputs``, keyed by output name: the fp32 PyTorch module, original attention."""
        import torch

        module = self.module(component, attention="original")
        with torch.inference_mode():
            result = module(**{k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()})
        return {name: t.detach().float().numpy() for name, t in zip(self.output_names(component), result, strict=True)}

    def input_plan(self, component: str, component_spec: ComponentSpec, seed: int) -> list[InputPlan]:
        """Input k (in the spec's order) gets seed + k; int inputs draw below the spec's ``high``, else the
        vocab size / timestep count."""
        facts = self.facts(component)
        plans = []
        for k, (name, tensor) in enumerate(component_spec.inputs.items()):
            high = tensor.high
            if tensor.dtype == "int32" and facts is not None and high is None:
                high = facts.vocab_size if name == "input_ids" else facts.num_train_timesteps
            plans.append(InputPlan(name, tuple(tensor.shape), tensor.dtype, seed + k, high))
        return plans

    def example_inputs(self, component: str, component_spec: ComponentSpec, seed: int) -> dict[str, np.ndarray]:
        return {p.name: make_input(p.shape, p.dtype, p.seed, p.high)
                for p in self.input_plan(component, component_spec, seed)}

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "revision": self.revision, "components": list(self.components())}


def state_dict_hash(module: nn.Module) -> str:
    """sha256 over (name, dtype, shape, bytes) of every tensor in the state dict, in name order."""
    import torch

    digest = hashlib.sha256()
    state: Mapping[str, Any] = module.state_dict()
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu().reshape(-1)
        digest.update(f"{name}|{tensor.dtype}|{tuple(state[name].shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
