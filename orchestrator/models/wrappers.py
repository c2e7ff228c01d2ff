"""Component wrappers: fixed input names and a tuple of outputs in a fixed order, ready for export.

Core ML names inputs after the forward arguments and outputs by position, so each wrapper's ``forward``
takes exactly ``COMPONENTS[name].input_names`` and returns ``COMPONENTS[name].output_names`` in order.
"""

from __future__ import annotations

import torch
from torch import nn


class TextEncoder(nn.Module):
    """CLIP text model -> (last_hidden_state, pooled_outputs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids=input_ids, return_dict=False)
        return out[0], out[1]


class UNet(nn.Module):
    """UNet2DConditionModel -> (noise_pred,)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0],)


class VaeDecoder(nn.Module):
    """AutoencoderKL's decoding half -> (image,). Latent scaling stays in the app, as in diffusers pipelines."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        # Some VAEs are configured without post_quant_conv (use_post_quant_conv=False).
        post_quant_conv = model.post_quant_conv
        self.post_quant_conv: nn.Module = post_quant_conv if isinstance(post_quant_conv, nn.Module) else nn.Identity()
        self.decoder: nn.Module = model.decoder  # type: ignore[assignment]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.decoder(self.post_quant_conv(z)),)


WRAPPERS: dict[str, type[nn.Module]] = {"text_encoder": TextEncoder, "unet": UNet, "vae_decoder": VaeDecoder}


def wrap(component: str, model: nn.Module) -> nn.Module:
    return WRAPPERS[component](model).eval()
