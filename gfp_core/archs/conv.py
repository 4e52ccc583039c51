"""Which algorithm computes the 3×3 convolutions of an inference pass.

By default every convolution is PyTorch's (oneDNN's direct algorithm on CPUs): the official
implementation's numerics, bit for bit. Inside :func:`fast_kernels`, float32 3×3 convolutions on
the CPU with enough channels use NNPACK's Winograd algorithm instead, which needs about a third
of the multiplications. Its results differ from the direct sum by float rounding only (relative
error around 1e-4 per layer; about 1e-3 on a GFPGAN output in [-1, 1], a tenth of an 8-bit level).
Gradients always take the reference path.
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
#: (measured on AVX-512 cores: 32→32 channels at 512² is no faster, 64→64 and up are 1.5–3×)
WINOGRAD_MIN_CHANNELS = 64

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


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0
           ) -> torch.Tensor:
    """``F.conv2d`` (stride 1), or Winograd where :func:`fast_kernels` allows and it pays."""
    out_channels, in_channels, kh, kw = weight.shape
    if (_FAST.get() and kh == kw == 3 and padding == 1 and x.device.type == "cpu"
            and x.dtype is torch.float32 and weight.dtype is torch.float32
            and min(in_channels, out_channels) >= WINOGRAD_MIN_CHANNELS
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and winograd_available()):
        return torch._nnpack_spatial_convolution(x.contiguous(), weight.contiguous(), bias, [1, 1])
    return F.conv2d(x, weight, bias, padding=padding)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state-dict keys) whose stride-1 inference may use :func:`conv2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1) and self.groups == 1 and self.padding_mode == "zeros" \
                and self.padding[0] == self.padding[1] and self.dilation == (1, 1):
            return conv2d(x, self.weight, self.bias, padding=self.padding[0])
        return super().forward(x)
