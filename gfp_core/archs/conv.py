"""Which algorithm computes the convolutions of an inference pass.

By default every convolution is PyTorch's (oneDNN's direct algorithm on CPUs): the official
implementation's numerics, bit for bit. Inside :func:`fast_kernels`, on the CPU, 3×3
convolutions use NNPACK's Winograd algorithm instead, which needs about a third of the
multiplications, and 1×1 convolutions become one matrix product per image. The results differ
from the direct sums by float rounding only (relative error around 1e-4 per layer; about 2e-5 on
a GFPGAN output in [-1, 1], a four-hundredth of an 8-bit level). Gradients always take the
reference path.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

#: below this many input or output channels Winograd's transforms cost more than they save
#: (measured on AVX-512 cores, 1 and 2 threads: 32→32 channels at 512² take half the time of
#: oneDNN's direct convolution, 64 channels and up a third to a half)
WINOGRAD_MIN_CHANNELS = 16

#: bf16 on the CPU: from this many channels on, a 3×3 convolution is faster as float32 Winograd
#: than as oneDNN's bf16 direct convolution, conversions included (measured: 1.15× for the whole
#: model at 128, less at 64 or 256). The result is rounded back to bf16, so it is no less accurate.
BF16_WINOGRAD_MIN_CHANNELS = 128

_FAST = ContextVar("gfp_fast_kernels", default=False)


@lru_cache(maxsize=1)
def winograd_available() -> bool:
    """NNPACK is compiled into this PyTorch and runs on this CPU (the check also initialises it)."""
    backend = getattr(torch.backends, "nnpack", None)
    return bool(backend is not None and backend.is_available())


@contextmanager
def fast_kernels(enabled: bool = True) -> Iterator[None]:
    """Let the convolutions of this thread's forward passes use the faster, not bit-exact kernels."""
    token = _FAST.set(enabled)
    try:
        yield
    finally:
        _FAST.reset(token)


def fast_kernels_enabled() -> bool:
    return _FAST.get()


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is stored NHWC (channels-last), the layout oneDNN convolves fastest on CPUs."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0,
           fast: bool | None = None) -> torch.Tensor:
    """``F.conv2d`` (stride 1), or a faster kernel where :func:`fast_kernels` allows and it pays:
    Winograd for 3×3 (also for wide bf16 layers, computed in float32), one matrix product per image
    for 1×1 (PyTorch's NCHW 1×1 path is slower)."""
    fast = _FAST.get() if fast is None else fast
    out_channels, in_channels, kh, kw = weight.shape
    if (fast and x.device.type == "cpu" and x.dtype is torch.bfloat16 and kh == kw == 3 and padding in (0, 1)
            and min(in_channels, out_channels) >= BF16_WINOGRAD_MIN_CHANNELS and not torch.is_grad_enabled()
            and winograd_available()):
        layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        out = _winograd(x.to(torch.float32, memory_format=torch.contiguous_format), weight.float().contiguous(),
                        None if bias is None else bias.float(), padding)
        return out.to(torch.bfloat16, memory_format=layout)
    if not (fast and x.device.type == "cpu" and x.dtype is torch.float32 and weight.dtype is torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))):
        return F.conv2d(x, weight, bias, padding=padding)
    x = x.contiguous()  # NCHW: an input in another layout is converted once, what follows stays NCHW
    if (kh == kw == 3 and padding in (0, 1) and min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS
            and winograd_available()):
        return _winograd(x, weight.contiguous(), bias, padding)
    if kh == kw == 1 and padding == 0:
        b, _, h, w = x.shape
        out = torch.matmul(weight.reshape(out_channels, in_channels), x.view(b, in_channels, h * w))
        if bias is not None:
            out += bias.view(1, out_channels, 1)
        return out.view(b, out_channels, h, w)
    return F.conv2d(x, weight, bias, padding=padding)


def _winograd(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int) -> torch.Tensor:
    """NNPACK's convolution, one image at a time: for a batch it switches to its training algorithm,
    which is slower than its inference one per image (measured: 3 faces of ParseNet, no gain at all)."""
    if x.shape[0] == 1:
        return torch._nnpack_spatial_convolution(x, weight, bias, [padding, padding])
    return torch.cat([torch._nnpack_spatial_convolution(image, weight, bias, [padding, padding])
                      for image in x.split(1)])


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state-dict keys) whose stride-1 inference may use :func:`conv2d`."""

    #: None: as :func:`fast_kernels` says; True: always the fast kernels (see :func:`use_fast_convolutions`)
    fast: bool | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1) and self.groups == 1 and self.padding_mode == "zeros" \
                and isinstance(self.padding, tuple) and self.padding[0] == self.padding[1] \
                and self.dilation == (1, 1):
            return conv2d(x, self.weight, self.bias, padding=self.padding[0], fast=self.fast)
        return super().forward(x)


class FastConv2d(Conv2d):
    fast = True


def use_fast_convolutions(model: nn.Module) -> nn.Module:
    """Let every plain ``nn.Conv2d`` of a third-party network (face detectors and parsers) run with the
    fast kernels, in place: the modules keep their parameters and names, only their class changes."""
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = FastConv2d
    return model
