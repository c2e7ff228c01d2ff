"""``builtin:NAME``: models built from the configs in ``configs.py`` with seeded random weights."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from orchestrator.models.components import COMPONENTS, ComponentFacts, facts_from_config
from orchestrator.models.configs import BUILTINS, BuiltinComponent, BuiltinModel
from orchestrator.models.source import ModelSource, SourceProblem, state_dict_hash

if TYPE_CHECKING:
    from torch import nn


def _construct(part: BuiltinComponent) -> nn.Module:
    if part.library == "clip_text":
        from transformers import CLIPTextConfig, CLIPTextModel

        return CLIPTextModel(CLIPTextConfig(**part.config))
    from diffusers import AutoencoderKL, UNet2DConditionModel

    model = UNet2DConditionModel(**part.config) if part.library == "unet" else AutoencoderKL(**part.config)
    return cast("nn.Module", model)


class BuiltinSource(ModelSource):
    """A built-in model; its weights are a function of (config, seed), named by ``revision``."""

    def __init__(self, model: BuiltinModel) -> None:
        self.model = model
        self.id = f"builtin:{model.name}"
        self.revision = model.revision
        self._hashes: dict[str, str] = {}

    @classmethod
    def named(cls, name: str) -> BuiltinSource:
        if name not in BUILTINS:
            raise SourceProblem(f"unknown built-in model {name!r}",
                                f"use one of: {', '.join('builtin:' + n for n in BUILTINS)}")
        return cls(BUILTINS[name])

    def components(self) -> tuple[str, ...]:
        return tuple(c for c in COMPONENTS if c in self.model.components)

    def _part(self, component: str) -> BuiltinComponent:
        try:
            return self.model.components[component]
        except KeyError:
            raise SourceProblem(f"{self.id} has no component {component!r}",
                                f"use one of: {', '.join(self.components())}") from None

    def facts(self, component: str) -> ComponentFacts:
        return facts_from_config(component, self._part(component).config)

    def _load(self, component: str) -> nn.Module:
        import torch

        part = self._part(component)
        # fork_rng: seeding must not disturb the caller's random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.model.seed)
            model = _construct(part).float().eval()
        # Hash while the module exists: building a second full-size UNet just to hash it would double the
        # build's peak memory (3.4 GB for SD-1.5). The weights are a function of the seed, so once is enough.
        if component not in self._hashes:
            self._hashes[component] = state_dict_hash(model)
        return model

    def weights_hash(self, component: str) -> str:
        if component not in self._hashes:
            self._load(component)
        return self._hashes[component]
