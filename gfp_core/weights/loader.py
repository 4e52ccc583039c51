"""The one way to get a ready-to-run model: reference → verified file → safe state dict → module."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..archs.conv import use_fast_convolutions
from ..device import resolve_device, resolve_dtype
from ..errors import UnsupportedCheckpointError
from .architectures import build_architecture, detect_architecture, detect_gfpgan
from .checkpoint import is_synthetic, read_checkpoint
from .registry import ModelSpec
from .resolve import resolve_weights


#: third-party networks that run with the fast CPU convolutions unless ``exact`` (their outputs feed
#: thresholds and blurred masks: float rounding does not show)
FAST_KINDS = frozenset({"detection", "parsing"})

#: architectures whose every tensor that matters is in the checkpoint, so they can be built empty
META_BUILDABLE = frozenset({"GFPGANv1Clean", "GFPGANv1"})


#: what building a module or adopting tensors raises when a checkpoint's shapes or dtypes do not fit
_UNFIT = (RuntimeError, ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, AssertionError)


def _build(arch: str, kwargs: dict[str, Any], source: str) -> nn.Module:
    try:
        if arch in META_BUILDABLE:
            with torch.device("meta"):
                return build_architecture(arch, kwargs)
        return build_architecture(arch, kwargs)
    except _UNFIT as exc:  # sizes read from a damaged or foreign file can describe no valid network
        raise UnsupportedCheckpointError(
            f"{source}: its tensors describe a {arch} that cannot be built ({kwargs}; {type(exc).__name__}: "
            f"{exc}); the file is damaged or not a model we know") from exc


def build_for(state: dict[str, torch.Tensor], spec: ModelSpec | None, source: str) -> tuple[nn.Module, str]:
    """Build the architecture the weights belong to: GFPGAN variants are recognised from their keys,
    other models come from the registry entry."""
    detected = detect_gfpgan(state)
    if detected is not None:
        arch, kwargs = detected
    elif spec is not None and spec.arch != "data":
        arch, kwargs = spec.arch, dict(spec.arch_kwargs)
    else:
        arch, kwargs = detect_architecture(state, source)  # raises with a clear message
    return _build(arch, kwargs, source), arch


def _adopt(model: nn.Module, state: dict[str, torch.Tensor], arch: str, source: str) -> None:
    """Load ``state`` into ``model`` (strict); a checkpoint that does not fit is the user's error."""
    # CPU kernels round differently on misaligned memory (safetensors buffers are packed), so
    # tensors the model adopts are kept 64-byte aligned: the same weights give the same output
    # whatever the file format
    state = {k: v if v.data_ptr() % 64 == 0 else v.clone() for k, v in state.items()}
    try:
        # GFPGAN models are built on the meta device (no random init to throw away) and take the
        # checkpoint's tensors directly
        model.load_state_dict(state, strict=True, assign=arch in META_BUILDABLE)
    except _UNFIT as exc:
        raise UnsupportedCheckpointError(
            f"{source} does not fit the {arch} architecture: {_summary(exc)}") from exc


def _summary(exc: Exception, limit: int = 400) -> str:
    """torch's load_state_dict message on one line, cut short: it can list hundreds of keys."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + " …"


def load_model(ref: str | os.PathLike[str], *, device: str | torch.device | None = None,
               dtype: str | torch.dtype | None = None, allow_unverified: bool | None = None,
               download: bool = True, progress: bool = True, exact: bool = False) -> nn.Module:
    """Load a known model by name (``"v1.4"``, ``"GFPGANv1.3"``, …) or any GFPGAN weights file.

    The model comes back in eval mode without gradients, on ``device`` (auto: CUDA > MPS > CPU) in
    ``dtype`` (fp32 unless asked). ``model.gfp_info`` tells where the weights came from
    and whether they are seeded random weights (``synthetic``, from :mod:`gfp_core.synthetic`).

    GFPGAN models run with the fastest kernels measured for their device and dtype
    (``GFPGANBase.optimize_for_inference``: Winograd convolutions on CPUs in fp32, channels-last
    elsewhere); their outputs differ from the official code's by float rounding (about 1e-5 on the
    [-1, 1] scale). Face detectors and parsers on the CPU use the same fast convolutions.
    ``exact=True`` keeps the reference kernels: the official outputs bit for bit.
    """
    target = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target)  # bad options fail before any file is read
    resolved = resolve_weights(ref, download=download, allow_unverified=allow_unverified, progress=progress)
    state, metadata = read_checkpoint(resolved.path)
    model, arch = build_for(state, resolved.spec, str(resolved.path))
    _adopt(model, state, arch, str(resolved.path))
    model.eval().requires_grad_(False)
    model.to(device=target, dtype=target_dtype)
    if not exact and hasattr(model, "optimize_for_inference"):
        model.optimize_for_inference()
    elif not exact and target.type == "cpu" and resolved.spec is not None and resolved.spec.kind in FAST_KINDS:
        use_fast_convolutions(model)
    info: dict[str, Any] = {"arch": arch, "path": str(resolved.path), "source": resolved.source, "exact": exact,
                            "verified": resolved.verified, "name": resolved.spec.name if resolved.spec else None,
                            "synthetic": is_synthetic(metadata)}
    model.gfp_info = info
    return model
