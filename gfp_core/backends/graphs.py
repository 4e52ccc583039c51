"""GFPGAN cut into the three graphs an exported runtime compiles, each at the precision it tolerates.

Measured with OpenVINO on seeded v1.4-format weights (``bench/bench_forward.py``): computing the whole
network in bf16 moves the output by up to 0.053 on [-1, 1]; nearly all of it comes from the
StyleGAN2 prior's coarse levels, whose rounding every finer level upsamples and amplifies. The U-Net
alone in bf16 moves it by 0.001. So:

* :class:`Encoder` — the U-Net: faces → latent code(s) and CS-SFT maps (bf16: most of the work);
* :class:`PriorStart` — the prior's 4×4 start and its first ``levels`` resolutions (fp32: a few
  GFLOP of 395);
* :class:`PriorEnd` — the remaining resolutions up to the restored face (bf16).

All take the stored noise maps (deterministic, as the PyTorch default) and ``fidelity`` as a 0-d
tensor input, so one compiled graph serves every fidelity.
"""
from __future__ import annotations

import torch
from torch import nn

from ..archs.sft import synthesis_levels, synthesis_start

#: prior levels (8×8 to 32×32) computed in fp32 after the 4×4 start: on seeded weights, at fidelity 1,
#: the output moves by 0.031 instead of 0.053 for a whole bf16 network, for 8 of its 395 GFLOP
FP32_PRIOR_LEVELS = 3


class _Part(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def generator(self) -> nn.Module:
        return self.model.stylegan_decoder

    def noise(self) -> list[torch.Tensor]:
        return list(self.generator.noise_maps(None, randomize_noise=False))


class Encoder(_Part):
    """faces ``[1, 3, S, S]`` → (style, scale₀, shift₀, scale₁, shift₁, …)."""

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, ...]:
        style, conditions, _ = self.model.encode(faces)
        return (style, *conditions)


class PriorStart(_Part):
    """(fidelity, style, conditions…) → (latent, features, rgb) after the first ``levels`` levels."""

    def __init__(self, model: nn.Module, levels: int = FP32_PRIOR_LEVELS):
        super().__init__(model)
        self.levels = levels

    def forward(self, fidelity: torch.Tensor, style: torch.Tensor, *conditions: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent = self.generator.styles_to_latent([style], self.model.input_is_latent)
        noise = self.noise()
        out, skip = synthesis_start(self.generator, latent, noise)
        out, skip = synthesis_levels(self.generator, latent, conditions, noise, self.model.sft_half, fidelity,
                                     out, skip, range(self.levels))
        return latent, out, skip


class PriorEnd(_Part):
    """(fidelity, latent, features, rgb, conditions…) → the restored faces ``[1, 3, S, S]``."""

    def __init__(self, model: nn.Module, levels: int = FP32_PRIOR_LEVELS):
        super().__init__(model)
        self.levels = levels

    def forward(self, fidelity: torch.Tensor, latent: torch.Tensor, out: torch.Tensor, skip: torch.Tensor,
                *conditions: torch.Tensor) -> torch.Tensor:
        _, skip = synthesis_levels(self.generator, latent, conditions, self.noise(), self.model.sft_half, fidelity,
                                   out, skip, range(self.levels, len(self.generator.to_rgbs)))
        return skip
