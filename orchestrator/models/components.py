"""The component kinds a Stable-Diffusion-shaped pipeline is cut into, and what their configs tell us.

A *component* is one Core ML artifact family: ``text_encoder``, ``unet`` or ``vae_decoder``. Each kind fixes
its Core ML input names (in order), its output names (in order), the diffusers folder its weights live in and
how it is exported. ``ComponentFacts`` are the few config numbers the shape check needs; they are read from
plain config dicts (a diffusers ``config.json``, or the built-in configs), so checking a spec never imports
torch.

    >>> COMPONENTS["unet"].input_names
    ('sample', 'timestep', 'encoder_hidden_states')
    >>> facts_from_config("unet", {"block_out_channels": [32, 64], "cross_attention_dim": 64}).downsample
    2
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Exporter = Literal["torch.export", "jit.trace"]


@dataclass(frozen=True)
class InputRole:
    """One input of a component kind: its name, rank and the dtypes Core ML may receive."""

    name: str
    rank: int
    dtypes: tuple[str, ...]
    meaning: str


@dataclass(frozen=True)
class ComponentKind:
    name: str
    subfolder: str  # folder in a diffusers pipeline (model_index.json key)
    inputs: tuple[InputRole, ...]
    output_names: tuple[str, ...]
    exporter: Exporter
    description: str

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    def role(self, name: str) -> InputRole | None:
        return next((i for i in self.inputs if i.name == name), None)


_FLOAT = ("float32", "float16")

COMPONENTS: Mapping[str, ComponentKind] = {k.name: k for k in (
    # transformers' CLIP text model goes through torch.jit.trace: torch.export fails on it (an `alias` node
    # coremltools cannot convert), while tracing works.
    ComponentKind("text_encoder", "text_encoder",
                  (InputRole("input_ids", 2, ("int32",), "[batch, tokens] token ids"),),
                  ("last_hidden_state", "pooled_outputs"), "jit.trace",
                  "CLIP text encoder: token ids -> per-token embeddings and the pooled (EOS) embedding"),
    # diffusers models go through torch.export: their TorchScript trace breaks in coremltools on an `int` op.
    ComponentKind("unet", "unet",
                  (InputRole("sample", 4, _FLOAT, "[batch, latent channels, height, width] noisy latents"),
                   InputRole("timestep", 1, (*_FLOAT, "int32"), "[batch] diffusion timestep"),
                   InputRole("encoder_hidden_states", 3, _FLOAT, "[batch, tokens, cross_attention_dim] text")),
                  ("noise_pred",), "torch.export",
                  "UNet2DConditionModel: one denoising step (batch 2 = classifier-free guidance)"),
    ComponentKind("vae_decoder", "vae",
                  (InputRole("z", 4, _FLOAT, "[batch, latent channels, height, width] latents"),),
                  ("image",), "torch.export",
                  "VAE decoder (post_quant_conv + decoder): latents -> image"),
)}


@dataclass(frozen=True)
class ComponentFacts:
    """Config numbers that constrain input shapes. ``None`` means not applicable to this kind."""

    component: str
    in_channels: int | None = None  # unet sample / vae z channels
    downsample: int | None = None  # unet: latent size must be a multiple of this
    cross_attention_dim: int | None = None
    vocab_size: int | None = None
    max_positions: int | None = None
    hidden_size: int | None = None
    num_train_timesteps: int | None = None
    upsample: int | None = None  # vae: image size = latent size x this
    unsupported: str | None = None  # why this config cannot be built (e.g. SDXL added conditions)


def _scale(block_out_channels: Any, default: tuple[int, ...]) -> int:
    blocks = block_out_channels or default
    return int(2 ** (len(blocks) - 1))


def facts_from_config(component: str, config: Mapping[str, Any]) -> ComponentFacts:
    """Read the shape-relevant numbers from a component's config dict (diffusers/transformers defaults apply)."""
    if component == "text_encoder":
        return ComponentFacts(component, vocab_size=int(config.get("vocab_size", 49408)),
                              max_positions=int(config.get("max_position_embeddings", 77)),
                              hidden_size=int(config.get("hidden_size", 512)))
    if component == "unet":
        cross = config.get("cross_attention_dim", 1280)
        unsupported = None
        if isinstance(cross, list | tuple):
            unsupported = "per-block cross_attention_dim is not supported"
        if config.get("addition_embed_type") is not None:
            unsupported = (f"addition_embed_type={config['addition_embed_type']!r} (SDXL-style added conditions) "
                           "needs extra inputs mlfarm does not export yet")
        return ComponentFacts(component, in_channels=int(config.get("in_channels", 4)),
                              downsample=_scale(config.get("block_out_channels"), (320, 640, 1280, 1280)),
                              cross_attention_dim=int(cross) if isinstance(cross, int) else None,
                              num_train_timesteps=int(config.get("num_train_timesteps", 1000)),
                              unsupported=unsupported)
    if component == "vae_decoder":
        return ComponentFacts(component, in_channels=int(config.get("latent_channels", 4)),
                              upsample=_scale(config.get("block_out_channels"), (64,)))
    raise KeyError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")
