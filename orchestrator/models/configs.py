"""Built-in model sources: architecture configs with seeded random weights, built locally in seconds.

``builtin:tiny-sd`` has the same architecture families as Stable Diffusion 1.x/2.x (CLIP text encoder,
UNet2DConditionModel with cross-attention, AutoencoderKL decoder with a mid-block attention), only small.
Its first UNet attention and the VAE mid-block attention run at the 32x32 latent, 1024 tokens, so
``split_einsum_v2`` really splits the query (chunks of 512). ``builtin:sd15-unet-random`` is the full-size
SD-1.5 UNet (860M parameters) for benchmarks.

The revision names the config set and the seed; change it whenever a config below changes, because build
caches key on (source id, revision) instead of hashing weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Library = Literal["clip_text", "unet", "autoencoder_kl"]


@dataclass(frozen=True)
class BuiltinComponent:
    library: Library  # which constructor builds it (see orchestrator/models/builtin.py)
    config: Mapping[str, Any]


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    revision: str
    seed: int
    description: str
    components: Mapping[str, BuiltinComponent] = field(default_factory=dict)


_TINY_TEXT = {
    "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2,
    "num_attention_heads": 2, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    # eos 2 is the SD 1.x convention: the pooled output is taken at the largest token id.
    "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}
_TINY_UNET = {
    "sample_size": 32, "in_channels": 4, "out_channels": 4, "layers_per_block": 1,
    "block_out_channels": [32, 64], "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 64,
    # diffusers' UNet reads attention_head_dim as the number of heads (diffusers issue #2011).
    "attention_head_dim": 2, "norm_num_groups": 8,
}
_TINY_VAE = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
    "block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2, "norm_num_groups": 16, "sample_size": 64,
}
# UNet2DConditionModel's defaults are SD 1.x's; only the cross-attention width (CLIP ViT-L/14) differs.
_SD15_UNET = {"sample_size": 64, "cross_attention_dim": 768}

BUILTINS: Mapping[str, BuiltinModel] = {m.name: m for m in (
    BuiltinModel("tiny-sd", "seed0-v2", 0, "tiny Stable-Diffusion-shaped pipeline, seeded random weights", {
        "text_encoder": BuiltinComponent("clip_text", _TINY_TEXT),
        "unet": BuiltinComponent("unet", _TINY_UNET),
        "vae_decoder": BuiltinComponent("autoencoder_kl", _TINY_VAE),
    }),
    BuiltinModel("sd15-unet-random", "seed0-v1", 0, "full-size SD-1.5 UNet with random weights (benchmarks)", {
        "unet": BuiltinComponent("unet", _SD15_UNET),
    }),
)}
