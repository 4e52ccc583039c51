"""StyleGAN2 generator, original flavour (equalised learning rate, FIR resampling, fused bias-act).

This is the decoder of the first GFPGAN release (``GFPGANv1.pth``). The compiled CUDA ops of the
official code are replaced by the plain-PyTorch versions in :mod:`.stylegan2_ops`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .conv import conv2d
from .stylegan2_clean import NormStyleCode, StyleGAN2Base, demodulation, stylegan2_channels
from .stylegan2_ops import EqualLinear, FIRFilter, FusedLeakyReLU


class ModulatedConv2d(nn.Module):
    """Modulated, demodulated convolution; upsampling is a stride-2 transposed conv + FIR blur."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: str | None = None,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), eps: float = 1e-8):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.sample_mode = sample_mode
        self.eps = eps
        if sample_mode == "upsample":
            self.smooth = FIRFilter(resample_kernel, "blur_up", conv_size=kernel_size)
        elif sample_mode == "downsample":
            self.smooth = FIRFilter(resample_kernel, "blur_down", conv_size=kernel_size)
        elif sample_mode is not None:
            raise ValueError(f"unknown sample mode {sample_mode!r}")
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.modulation = EqualLinear(num_style_feat, in_channels, bias=True, bias_init=1)
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        k = self.kernel_size
        style = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.scale * self.weight * style
        if self.demodulate:
            weight = weight * demodulation(weight, self.eps).view(b, self.out_channels, 1, 1, 1)
        if self.sample_mode == "upsample":
            # transposed conv wants [in, out] per group
            weight = weight.transpose(1, 2).reshape(b * c, self.out_channels, k, k)
            out = F.conv_transpose2d(x.reshape(1, b * c, h, w), weight, padding=0, stride=2, groups=b)
            return self.smooth(out.view(b, self.out_channels, out.shape[2], out.shape[3]))
        weight = weight.reshape(b * self.out_channels, c, k, k)
        if self.sample_mode == "downsample":
            x = self.smooth(x)
            out = F.conv2d(x.reshape(1, b * c, x.shape[2], x.shape[3]), weight, padding=0, stride=2, groups=b)
        elif b == 1:
            out = conv2d(x, weight, padding=self.padding)
        else:
            out = F.conv2d(x.reshape(1, b * c, h, w), weight, padding=self.padding, groups=b)
        return out.view(b, self.out_channels, out.shape[2], out.shape[3])


class StyleConv(nn.Module):
    """Modulated conv → noise injection → fused bias + leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, num_style_feat: int,
                 demodulate: bool = True, sample_mode: str | None = None,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.modulated_conv = ModulatedConv2d(in_channels, out_channels, kernel_size, num_style_feat,
                                              demodulate=demodulate, sample_mode=sample_mode,
                                              resample_kernel=resample_kernel)
        self.weight = nn.Parameter(torch.zeros(1))  # noise strength
        self.activate = FusedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style)
        if noise is None:
            b, _, h, w = out.shape
            noise = out.new_empty(b, 1, h, w).normal_()
        return self.activate(out + self.weight * noise)


class ToRGB(nn.Module):
    def __init__(self, in_channels: int, num_style_feat: int, upsample: bool = True,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.upsample = FIRFilter(resample_kernel, "up") if upsample else None
        self.modulated_conv = ModulatedConv2d(in_channels, 3, 1, num_style_feat, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.modulated_conv(x, style) + self.bias
        if skip is not None:
            if self.upsample is not None:
                skip = self.upsample(skip)
            out = out + skip
        return out


class StyleGAN2Generator(StyleGAN2Base):
    """Mapping network (equalised, lr-multiplied) and synthesis network with stored noise."""

    def __init__(self, out_size: int, num_style_feat: int = 512, num_mlp: int = 8, channel_multiplier: float = 2,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), lr_mlp: float = 0.01, narrow: float = 1):
        super().__init__()
        self.num_style_feat = num_style_feat
        self.style_mlp = nn.Sequential(NormStyleCode(), *[
            EqualLinear(num_style_feat, num_style_feat, lr_mul=lr_mlp, fused_lrelu=True) for _ in range(num_mlp)])
        self.build_synthesis(
            out_size, stylegan2_channels(channel_multiplier, narrow),
            style_conv=lambda i, o, up: StyleConv(i, o, 3, num_style_feat, sample_mode="upsample" if up else None,
                                                  resample_kernel=resample_kernel),
            to_rgb=lambda i, up: ToRGB(i, num_style_feat, upsample=up, resample_kernel=resample_kernel))
