"""Channel-Split Spatial Feature Transform (CS-SFT) and the StyleGAN2 synthesis loop that uses it.

GFPGAN's U-Net predicts, for every resolution, a scale map α and a shift map β. The StyleGAN2
generator (the generative facial prior) applies them to its features after the first convolution
of each resolution: ``F_sft = F * α + β`` — on half of the channels when ``sft_half`` (the paper's
"channel split": one half keeps the prior, the other half carries spatial detail of the input).

``fidelity`` f ∈ [0, 1] blends the modulated and the unmodulated features:
``F' = F + f · (F · α + β − F)``. f = 1 is the published model exactly (that branch is skipped, so
the result is bit-identical); f = 0 switches the spatial conditions off and leaves the StyleGAN2
prior driven only by the latent code the encoder predicted — a cleaner but less faithful face.
A 0-d tensor ``fidelity`` is a graph input of an exported model (:mod:`gfp_core.backends`): always
blended, so one compiled graph serves every value.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..options import FIDELITY


def check_fidelity(fidelity: float | torch.Tensor) -> float | torch.Tensor:
    """``fidelity`` as a float if it is in [0, 1]; else the option policy's error (setting 'fidelity').
    A tensor (an exported graph's input) is passed through: its value is not known while tracing."""
    if isinstance(fidelity, torch.Tensor):
        return fidelity
    return float(FIDELITY.check(fidelity))


def spatial_feature_transform(feat: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                              sft_half: bool, fidelity: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Apply (CS-)SFT modulation to ``feat``; see the module docstring for ``fidelity``."""
    if isinstance(fidelity, torch.Tensor):
        # F + f·(F·α + β − F) = F·(1 + f·(α − 1)) + f·β, as one affine over all channels (the kept half
        # ×1 + 0): exported runtimes run a channel split with slow reference kernels
        weight = fidelity.to(feat.dtype)
        scale, shift = 1 + weight * (scale - 1), weight * shift
        if sft_half:
            scale = torch.cat([torch.ones_like(scale), scale], dim=1)
            shift = torch.cat([torch.zeros_like(shift), shift], dim=1)
        return feat * scale + shift
    if sft_half:
        kept, modulated = torch.split(feat, feat.size(1) // 2, dim=1)
    else:
        kept, modulated = None, feat
    if fidelity == 1.0 and not feat.requires_grad:
        # without autograd the modulated half is overwritten in place: no concatenation copy
        modulated.mul_(scale).add_(shift)
        return feat
    elif fidelity == 1.0:
        out = modulated * scale + shift
    elif fidelity == 0.0:
        out = modulated
    else:
        out = torch.lerp(modulated, modulated * scale + shift, fidelity)
    return out if kept is None else torch.cat([kept, out], dim=1)


def stored_noise(generator: nn.Module) -> list[torch.Tensor]:
    """The generator's fixed per-layer noise maps (buffers ``noises.noise{i}``)."""
    return [getattr(generator.noises, f"noise{i}") for i in range(generator.num_layers)]


def keep_going() -> None:
    pass


def synthesize(generator: nn.Module, latent: torch.Tensor, conditions: Sequence[torch.Tensor],
               noise: Sequence[torch.Tensor | None], sft_half: bool, fidelity: float | torch.Tensor = 1.0,
               check: Callable[[], None] | None = None) -> torch.Tensor:
    """StyleGAN2 synthesis from per-layer latents ``[B, num_latent, C]`` with SFT conditions.

    ``conditions`` alternates scale and shift maps, coarse to fine; ``noise`` holds one map per
    style convolution (``None`` draws fresh Gaussian noise). Works for both the clean and the
    original generator: they share the layer layout and differ only in their blocks.
    ``check()`` runs before each resolution (it stops the synthesis by raising).
    """
    check = check or keep_going
    check()
    out, skip = synthesis_start(generator, latent, noise)
    _, skip = synthesis_levels(generator, latent, conditions, noise, sft_half, fidelity, out, skip,
                               range(len(generator.to_rgbs)), check)
    return skip


def synthesis_start(generator: nn.Module, latent: torch.Tensor, noise: Sequence[torch.Tensor | None]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The 4×4 start: the learned constant, its style conv and first RGB image → ``(features, rgb)``."""
    out = generator.constant_input(latent.shape[0])
    out = generator.style_conv1(out, latent[:, 0], noise=noise[0])
    return out, generator.to_rgb1(out, latent[:, 1])


def synthesis_levels(generator: nn.Module, latent: torch.Tensor, conditions: Sequence[torch.Tensor],
                     noise: Sequence[torch.Tensor | None], sft_half: bool, fidelity: float | torch.Tensor,
                     out: torch.Tensor, skip: torch.Tensor, levels: range,
                     check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The resolutions ``levels`` (0 = 8×8, 1 = 16×16, …) from the features and RGB image before them:
    each upsamples with a style conv, takes the CS-SFT maps of its level, convolves again and adds
    its RGB image to the upsampled skip. ``check()`` runs before each level."""
    check = check or keep_going
    for level in levels:
        check()
        i = 1 + 2 * level  # this level's first latent / condition index
        out = generator.style_convs[2 * level](out, latent[:, i], noise=noise[i])
        if i < len(conditions):  # the U-Net may provide fewer levels than the generator has
            out = spatial_feature_transform(out, conditions[i - 1], conditions[i], sft_half, fidelity)
        out = generator.style_convs[2 * level + 1](out, latent[:, i + 1], noise=noise[i + 1])
        skip = generator.to_rgbs[level](out, latent[:, i + 2], skip)
    return out, skip
