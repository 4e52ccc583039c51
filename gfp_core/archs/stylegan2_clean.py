"""StyleGAN2 generator, "clean" flavour (bilinear resampling, no custom ops).

This is the decoder of GFPGAN v1.2 / v1.3 / v1.4. Layer and parameter names match the official
checkpoints.
"""
from __future__ import annotations

import math
import random
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .conv import conv2d, fast_kernels_enabled, is_channels_last
from .sft import stored_noise, synthesize


class NormStyleCode(nn.Module):
    """Pixel norm of the input z before the mapping network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(torch.mean(x ** 2, dim=1, keepdim=True) + 1e-8)


def demodulation(weight: torch.Tensor, eps: float) -> torch.Tensor:
    """1/σ of each output channel's modulated weights ``[B, out, in, k, k]`` → ``[B, out]``.

    Summed in fp32: in fp16 the sum of squares over in·k·k terms can overflow.
    """
    return torch.rsqrt(weight.float().pow(2).sum([2, 3, 4]) + eps).to(weight.dtype)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per input channel by the style, then demodulated.

    One face is one plain convolution with its modulated weights. A batch in the reference NCHW
    layout is folded into the channel axis and run as one grouped convolution (the official form,
    bit for bit). A channels-last batch, or any batch under :func:`~gfp_core.archs.conv.fast_kernels`,
    instead scales the input by the style, convolves with the shared weights and demodulates the
    output: the same sum as one large batched convolution, which the fast kernels support.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: str | None = None, eps: float = 1e-8):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.sample_mode = sample_mode
        self.eps = eps
        self.modulation = nn.Linear(num_style_feat, in_channels, bias=True)
        nn.init.kaiming_normal_(self.modulation.weight, a=0, mode="fan_in", nonlinearity="linear")
        nn.init.constant_(self.modulation.bias, 1.0)  # start as the identity modulation
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size)
                                   / math.sqrt(in_channels * kernel_size ** 2))
        self.padding = kernel_size // 2

    def resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.sample_mode == "upsample":
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        if self.sample_mode == "downsample":
            return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        return x

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        k = self.kernel_size
        style = self.modulation(style).view(b, 1, c, 1, 1)
        if b > 1 and (is_channels_last(x) or fast_kernels_enabled()):
            return self._forward_batched(x, style)
        weight = self.weight * style  # [B, out, in, k, k]
        if self.demodulate:
            weight = weight * demodulation(weight, self.eps).view(b, self.out_channels, 1, 1, 1)
        x = self.resample(x)
        if b == 1:
            weight = weight.view(self.out_channels, c, k, k)
            if is_channels_last(x):
                weight = weight.contiguous(memory_format=torch.channels_last)
            return conv2d(x, weight, padding=self.padding)
        _, _, h, w = x.shape
        weight = weight.view(b * self.out_channels, c, k, k)
        out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.view(b, self.out_channels, out.shape[2], out.shape[3])

    def _forward_batched(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """conv(x·s, W)·d = conv(x, W·s·d) per face: the style scales the input channels, the
        demodulation the output channels, and all faces share one convolution with ``W``."""
        b, c = x.shape[:2]
        weight = self.weight[0]
        if is_channels_last(x):
            weight = weight.contiguous(memory_format=torch.channels_last)
        out = conv2d(self.resample(x * style.view(b, c, 1, 1)), weight, padding=self.padding)
        if self.demodulate:
            demod = demodulation(self.weight * style, self.eps)
            out = out.mul_(demod.view(b, self.out_channels, 1, 1)) if not out.requires_grad else \
                out * demod.view(b, self.out_channels, 1, 1)
        return out


class StyleConv(nn.Module):
    """Modulated conv → noise injection → bias → leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: str | None = None):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, kernel_size, num_style_feat,
                                              demodulate=demodulate, sample_mode=sample_mode)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.activate = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        if out.requires_grad:
            out = out * 2 ** 0.5  # gain of the leaky ReLU that follows
            out = out + self.weight * noise
            return self.activate(out + self.bias)
        # without autograd the same operations, in place: no new full-size tensors
        out.mul_(2 ** 0.5).add_(self.weight * noise).add_(self.bias)
        return self.activate(out)


class ToRGB(nn.Module):
    """1×1 modulated conv to RGB, added to the upsampled RGB of the previous resolution."""

    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample:
                skip = F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            out = out + skip
        return out


class ConstantInput(nn.Module):
    """The learned 4×4 constant the synthesis starts from."""

    def __init__(self, num_channel: int, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, num_channel, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.weight.repeat(batch, 1, 1, 1)


def stylegan2_channels(channel_multiplier: float, narrow: float) -> dict[str, int]:
    """Feature channels per resolution (StyleGAN2 config F when multiplier 2, narrow 1)."""
    base = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {str(res): int(ch * (channel_multiplier if res >= 64 else 1) * narrow) for res, ch in base.items()}


def register_noise_buffers(noises: nn.Module, num_layers: int) -> None:
    """One fixed noise map per style conv: 4×4, then two per resolution 8×8 … out_size."""
    for layer_idx in range(num_layers):
        resolution = 2 ** ((layer_idx + 5) // 2)
        noises.register_buffer(f"noise{layer_idx}", torch.randn(1, 1, resolution, resolution))


class StyleGAN2Base(nn.Module):
    """Layout shared by both generator flavours: a 4×4 constant, then per octave an upsampling style
    conv, a style conv and a ToRGB; one stored noise map per style conv. Subclasses pass their blocks."""

    def build_synthesis(self, out_size: int, channels: dict[str, int],
                        style_conv: Callable[[int, int, bool], nn.Module],
                        to_rgb: Callable[[int, bool], nn.Module]) -> None:
        self.channels = channels
        self.constant_input = ConstantInput(channels["4"], size=4)
        self.style_conv1 = style_conv(channels["4"], channels["4"], False)
        self.to_rgb1 = to_rgb(channels["4"], False)

        self.log_size = int(math.log(out_size, 2))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.num_latent = self.log_size * 2 - 2

        self.style_convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        register_noise_buffers(self.noises, self.num_layers)
        in_channels = channels["4"]
        for i in range(3, self.log_size + 1):
            out_channels = channels[f"{2 ** i}"]
            self.style_convs.append(style_conv(in_channels, out_channels, True))
            self.style_convs.append(style_conv(out_channels, out_channels, False))
            self.to_rgbs.append(to_rgb(out_channels, True))
            in_channels = out_channels

    # --- sampling, with the official generators' API (rosinality's stylegan2-pytorch) ---

    def make_noise(self) -> list[torch.Tensor]:
        """Fresh Gaussian noise maps, one per style conv: 4×4, then two per resolution."""
        device = self.constant_input.weight.device
        return [torch.randn(1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2), device=device)
                for i in range(self.num_layers)]

    def get_latent(self, z: torch.Tensor) -> torch.Tensor:
        """The mapping network: z → w."""
        return self.style_mlp(z)

    def mean_latent(self, num_latent: int) -> torch.Tensor:
        """The average w of ``num_latent`` random z (the truncation latent), ``[1, num_style_feat]``."""
        z = torch.randn(num_latent, self.num_style_feat, device=self.constant_input.weight.device)
        return self.style_mlp(z).mean(0, keepdim=True)

    def styles_to_latent(self, styles: Sequence[torch.Tensor], input_is_latent: bool = False,
                         truncation: float = 1, truncation_latent: torch.Tensor | None = None,
                         inject_index: int | None = None) -> torch.Tensor:
        """One w per layer, ``[B, num_latent, C]``, from one or two codes.

        Codes are z unless ``input_is_latent`` (then w). Truncation pulls each w towards
        ``truncation_latent``: ``w' = w̄ + ψ (w − w̄)``. One code drives every layer (a ``[B, C]`` code
        is repeated; a ``[B, num_latent, C]`` code gives each layer its own). Two codes are style
        mixing: layers below ``inject_index`` (random in [1, num_latent) when None) take the first,
        the others the second.
        """
        if not 1 <= len(styles) <= 2:
            raise ValueError(f"expected one style code or two to mix, got {len(styles)}")
        if not input_is_latent:
            styles = [self.style_mlp(s) for s in styles]
        if truncation < 1:
            if truncation_latent is None:
                raise ValueError("truncation < 1 needs a truncation_latent (e.g. mean_latent(4096))")
            styles = [truncation_latent + truncation * (s - truncation_latent) for s in styles]
        if len(styles) == 1:
            return styles[0] if styles[0].ndim == 3 else styles[0].unsqueeze(1).repeat(1, self.num_latent, 1)
        if inject_index is None:
            inject_index = random.randint(1, self.num_latent - 1)
        first, second = (s if s.ndim == 3 else s.unsqueeze(1).repeat(1, self.num_latent, 1) for s in styles)
        return torch.cat([first[:, :inject_index], second[:, inject_index:]], 1)

    def noise_maps(self, noise: Sequence[torch.Tensor | None] | None = None, randomize_noise: bool = False
                   ) -> Sequence[torch.Tensor | None]:
        """The given maps, else the stored ones, else (``randomize_noise``) fresh draws at each layer."""
        if noise is not None:
            return noise
        return [None] * self.num_layers if randomize_noise else stored_noise(self)

    def forward(self, styles: torch.Tensor | Sequence[torch.Tensor], input_is_latent: bool = False,
                noise: Sequence[torch.Tensor | None] | None = None, randomize_noise: bool = False,
                truncation: float = 1, truncation_latent: torch.Tensor | None = None,
                inject_index: int | None = None, return_latents: bool = False, *,
                conditions: Sequence[torch.Tensor] = (), sft_half: bool = False, fidelity: float = 1.0,
                check: Callable[[], None] | None = None):
        """Sample faces, as the official generators do.

        ``styles``: a list of one code, or of two to mix (see :meth:`styles_to_latent`), which returns
        ``(image, latent)`` like the official code (``latent`` is None unless ``return_latents``);
        a bare tensor is a shorthand for ``[styles]`` that returns only the image.
        ``noise``: one map per style conv; when None, the stored maps unless ``randomize_noise``
        (the official default is True; here the output is deterministic unless asked).
        ``conditions`` / ``sft_half`` / ``fidelity``: the CS-SFT maps of GFPGAN (:func:`synthesize`);
        ``check()`` runs before each resolution and stops the synthesis by raising.
        """
        single = isinstance(styles, torch.Tensor)
        latent = self.styles_to_latent([styles] if single else styles, input_is_latent, truncation,
                                       truncation_latent, inject_index)
        image = synthesize(self, latent, conditions, self.noise_maps(noise, randomize_noise), sft_half, fidelity,
                           check)
        if single:
            return image
        return image, (latent if return_latents else None)


class StyleGAN2GeneratorClean(StyleGAN2Base):
    """Mapping network (z → w) and synthesis network with stored per-layer noise."""

    def __init__(self, out_size: int, num_style_feat: int = 512, num_mlp: int = 8,
                 channel_multiplier: float = 2, narrow: float = 1):
        super().__init__()
        self.num_style_feat = num_style_feat
        mlp: list[nn.Module] = [NormStyleCode()]
        for _ in range(num_mlp):
            linear = nn.Linear(num_style_feat, num_style_feat, bias=True)
            nn.init.kaiming_normal_(linear.weight, a=0.2, mode="fan_in", nonlinearity="leaky_relu")
            nn.init.zeros_(linear.bias)
            mlp += [linear, nn.LeakyReLU(negative_slope=0.2, inplace=True)]
        self.style_mlp = nn.Sequential(*mlp)
        self.build_synthesis(
            out_size, stylegan2_channels(channel_multiplier, narrow),
            style_conv=lambda i, o, up: StyleConv(i, o, 3, num_style_feat, sample_mode="upsample" if up else None),
            to_rgb=lambda i, up: ToRGB(i, num_style_feat, upsample=up))
