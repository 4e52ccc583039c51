"""StyleGAN2 building blocks of the original (non-"clean") architecture, in plain PyTorch.

The official code compiles two CUDA extensions, ``upfirdn2d`` (upsample, FIR filter, downsample)
and ``fused_bias_act`` (bias + leaky ReLU + gain). Both are written here with ordinary tensor ops
so the GFPGANv1 checkpoint runs on CPU, CUDA and MPS without a compiler. Parameter names follow
the official checkpoints so they load with ``strict=True``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .conv import conv2d

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2)  # keeps the activation's second moment at 1 (StyleGAN2's "gain")


def bias_along_dim1(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The bias of the official ``fused_bias_act`` kernel, shaped to broadcast over ``x``.

    The kernel treats dim 1 as the channel axis: element ``i`` of ``x`` gets
    ``bias[(i // step) % len(bias)]``, ``step`` being the size of one channel (the product of dims 2…).
    When dim 1 has ``len(bias)`` entries (``[B, C]`` activations, ``[B, C, H, W]`` feature maps) that
    is one bias per channel. A ``[B, L, C]`` stack of style codes (GFPGAN's ``different_w`` without
    ``input_is_latent``) has ``L`` rows on dim 1 instead; the kernel then adds to all ``C`` features of
    row ``(b, l)`` the single value ``bias[(b·L + l) % C]``, and so does this function.
    """
    channels = bias.shape[0]
    if x.ndim >= 2 and x.shape[1] == channels:
        return bias.view(1, channels, *([1] * (x.ndim - 2)))
    lead = x.shape[:2]
    rows = torch.arange(math.prod(lead), device=bias.device) % channels
    return bias[rows].view(*lead, *([1] * (x.ndim - len(lead))))


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None, slope: float = LRELU_SLOPE,
                     gain: float = LRELU_GAIN) -> torch.Tensor:
    """Bias + leaky ReLU + gain, the op the official code fuses into one kernel (bias as it indexes
    it, see :func:`bias_along_dim1`)."""
    if bias is not None:
        x = x + bias_along_dim1(x, bias)
    return F.leaky_relu(x, slope) * gain


def make_resample_kernel(taps: Sequence[float]) -> torch.Tensor:
    """2-D separable FIR kernel from 1-D taps, normalised to sum 1."""
    # explicit CPU: the kernel is not part of checkpoints, so it must be real even when the
    # model is built on the meta device to be filled from a state dict
    k = torch.tensor(taps, dtype=torch.float32, device="cpu")
    if k.ndim == 1:
        k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter with ``kernel``, then keep every ``down``-th pixel.

    Same semantics as the official op (the kernel is flipped, i.e. a true convolution).
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape
    x = x.reshape(b * c, 1, h, w)
    if up > 1:  # zero insertion: each pixel followed by (up - 1) zeros on both axes
        x = x.view(b * c, 1, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.view(b * c, 1, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:  # negative padding crops
        x = x[:, :, max(-p0, 0):x.shape[2] - max(-p1, 0), max(-p0, 0):x.shape[3] - max(-p1, 0)]
    weight = torch.flip(kernel, [0, 1]).view(1, 1, kh, kw).to(x)
    x = F.conv2d(x, weight, stride=down)
    return x.view(b, c, x.shape[2], x.shape[3])


class FIRFilter(nn.Module):
    """Fixed FIR filter with the padding a resampling step needs (the official ``UpFirDn*``).

    ``mode='up'``: the 2x upsampler of ToRGB skips; ``'blur_up'``/``'blur_down'``: the blur that
    surrounds a stride-2 (transposed) convolution of size ``conv_size``.
    """

    def __init__(self, taps: Sequence[float], mode: str, conv_size: int = 1, factor: int = 2):
        super().__init__()
        kernel = make_resample_kernel(taps)
        k = kernel.shape[0]
        self.up = 1
        self.down = 1
        if mode == "up":
            kernel = kernel * factor ** 2
            p = k - factor
            self.up = factor
            self.pad = ((p + 1) // 2 + factor - 1, p // 2)
        elif mode == "down":
            p = k - factor
            self.down = factor
            self.pad = ((p + 1) // 2, p // 2)
        elif mode == "blur_up":
            kernel = kernel * factor ** 2
            p = (k - factor) - (conv_size - 1)
            self.pad = ((p + 1) // 2 + factor - 1, p // 2 + 1)
        elif mode == "blur_down":
            p = (k - factor) + (conv_size - 1)
            self.pad = ((p + 1) // 2, p // 2)
        else:
            raise ValueError(f"unknown FIR mode {mode!r}")
        # not a parameter and not saved: official checkpoints do not store it
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.up, down=self.down, pad=self.pad)


class FusedLeakyReLU(nn.Module):
    """Learned per-channel bias followed by the scaled leaky ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    def __init__(self, slope: float = LRELU_SLOPE):
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.slope) * LRELU_GAIN


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored N(0,1), scaled at run time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, fused_lrelu: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.fused_lrelu = fused_lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias * self.lr_mul
        if self.fused_lrelu:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.full((out_channels,), float(bias_init))) if bias else None
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class ConvLayer(nn.Sequential):
    """[blur] → equalised conv → [bias + scaled leaky ReLU], as in the StyleGAN2 discriminator.

    A Sequential so that parameter names (``0.weight``, ``1.bias``) match the checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), bias: bool = True, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            layers.append(FIRFilter(resample_kernel, "blur_down", conv_size=kernel_size))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlockDown(nn.Module):
    """Residual block that halves the resolution (discriminator and GFPGANv1 encoder)."""

    def __init__(self, in_channels: int, out_channels: int, resample_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=True, resample_kernel=resample_kernel)
        self.skip = ConvLayer(in_channels, out_channels, 1, downsample=True, resample_kernel=resample_kernel,
                              bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)
