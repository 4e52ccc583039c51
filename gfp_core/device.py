"""The library's one device/dtype policy: auto = CUDA > MPS > CPU; fp32 unless asked otherwise.

The names a user may give are defined in :mod:`gfp_core.options` (``DEVICES``, ``DTYPES``). Messages
name the setting ('device', 'dtype'), never a front end's flag: front ends rename it with
:func:`gfp_core.options.in_words`.
"""
from __future__ import annotations

import torch

from .errors import InvalidOptionError
from .options import DTYPES, check_dtype, device_error

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DTYPE_NAMES = DTYPES.names  #: defined in gfp_core.options


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/'auto' picks the best available accelerator; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError) as exc:
        raise device_error(device) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError("{setting} " + repr(device) + " was asked for, but CUDA is not available here; "
                                 "choose cpu or auto", setting="device", value=device, allowed=("auto", "cpu"))
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None = None, device: torch.device | None = None) -> torch.dtype:
    """``None`` means fp32 (the published numerics); fp16/bf16 are opt-in.

    fp16 is refused on the CPU: PyTorch has no fast fp16 convolutions there, so a face would take
    minutes instead of seconds (bf16 is the fast reduced precision on CPUs).
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise InvalidOptionError("unsupported {setting} " + str(dtype) + "; use one of " + ", ".join(DTYPE_NAMES),
                                     setting="dtype", value=dtype, allowed=DTYPE_NAMES)
        resolved = dtype
    elif dtype is None:
        resolved = torch.float32
    else:
        resolved = _DTYPES[check_dtype(dtype)]
    if resolved is torch.float16 and device is not None and device.type == "cpu":
        raise InvalidOptionError("fp16 is not supported on the CPU (no fast fp16 kernels there); use {setting} bf16 "
                                 "or fp32", setting="dtype", value=dtype, allowed=tuple(n for n in DTYPE_NAMES if n != "fp16"))
    return resolved
