"""The library's one device/dtype policy: auto = CUDA > MPS > CPU; fp32 unless asked otherwise."""
from __future__ import annotations

import torch

from .errors import InvalidOptionError

_DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}
DTYPE_NAMES = ("fp32", "fp16", "bf16")


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
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise InvalidOptionError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidOptionError(f"device {device!r} was requested but CUDA is not available; use --device cpu or auto")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None = None, device: torch.device | None = None) -> torch.dtype:
    """``None`` means fp32 (the published numerics); fp16/bf16 are opt-in.

    fp16 is refused on the CPU: PyTorch has no fast fp16 convolutions there, so a face would take
    minutes instead of seconds (bf16 is the fast reduced precision on CPUs).
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise InvalidOptionError(f"unsupported dtype {dtype}; use one of {', '.join(DTYPE_NAMES)}")
        resolved = dtype
    elif dtype is None:
        resolved = torch.float32
    else:
        try:
            resolved = _DTYPES[str(dtype).lower()]
        except KeyError:
            raise InvalidOptionError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}") from None
    if resolved is torch.float16 and device is not None and device.type == "cpu":
        raise InvalidOptionError("fp16 is not supported on the CPU (no fast fp16 kernels there); use bf16 or fp32")
    return resolved
