"""The one way to get a ready-to-run model: reference → verified file → safe state dict → module."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from ..backends import select_backend
from ..device import resolve_device, resolve_dtype
from ..errors import UnsupportedCheckpointError
from ..options import check_backend
from .architectures import Architecture, adapt_state, detect_architecture, get_architecture, recognise_architecture
from .checkpoint import is_synthetic, read_checkpoint
from .registry import ModelSpec
from .resolve import resolve_weights


@dataclass(frozen=True)
class ModelInfo:
    """Where a loaded model's weights came from, and what they are."""

    arch: str                 # the architecture built (see gfp_core.weights.architectures)
    path: str                 # the weights file read
    source: str               # how it was found: path, folder, hf-cache, download, …
    name: str | None          # the registry entry, when the file is a known model's
    verified: bool            # its SHA-256 is the registry's
    synthetic: bool           # seeded random weights (gfp_core.synthetic), not a trained model
    exact: bool               # reference kernels (bit-exact with the official code)
    backend: str = "torch"    # what runs the forward pass: torch or openvino (gfp_core.backends)


class LoadedModel(NamedTuple):
    """A ready module and, beside it, what it is (:func:`load_model_with_info`)."""

    module: nn.Module
    info: ModelInfo


#: what building a module or adopting tensors raises when a checkpoint's shapes or dtypes do not fit
_UNFIT = (RuntimeError, ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, AssertionError)


def _build(arch: Architecture, kwargs: dict[str, Any], source: str) -> nn.Module:
    try:
        if arch.build_empty:
            with torch.device("meta"):
                return arch.build(**kwargs)
        return arch.build(**kwargs)
    except _UNFIT as exc:  # sizes read from a damaged or foreign file can describe no valid network
        raise UnsupportedCheckpointError(
            f"{source}: its tensors describe a {arch.name} that cannot be built ({kwargs}; {type(exc).__name__}: "
            f"{exc}); the file is damaged or not a model we know") from exc


def build_for(state: dict[str, torch.Tensor], spec: ModelSpec | None, source: str) -> tuple[nn.Module, Architecture]:
    """Build the architecture the weights belong to: face restorers are recognised from their keys,
    other models come from the registry entry."""
    detected = recognise_architecture(state)
    if detected is not None:
        name, kwargs = detected
    elif spec is not None and spec.arch != "data":
        name, kwargs = spec.arch, dict(spec.arch_kwargs)
    else:
        name, kwargs = detect_architecture(state, source)  # raises with a clear message
    arch = get_architecture(name)
    return _build(arch, kwargs, source), arch


def _adopt(model: nn.Module, state: dict[str, torch.Tensor], arch: Architecture, source: str) -> None:
    """Load ``state`` into ``model`` (strict); a checkpoint that does not fit is the user's error."""
    # CPU kernels round differently on misaligned memory (safetensors buffers are packed), so
    # tensors the model adopts are kept 64-byte aligned: the same weights give the same output
    # whatever the file format
    state = {k: v if v.data_ptr() % 64 == 0 else v.clone() for k, v in state.items()}
    try:
        # GFPGAN models are built on the meta device (no random init to throw away) and take the
        # checkpoint's tensors directly
        model.load_state_dict(state, strict=True, assign=arch.build_empty)
    except _UNFIT as exc:
        raise UnsupportedCheckpointError(
            f"{source} does not fit the {arch.name} architecture: {_summary(exc)}") from exc


def _summary(exc: Exception, limit: int = 400) -> str:
    """torch's load_state_dict message on one line, cut short: it can list hundreds of keys."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + " …"


def load_model(ref: str | os.PathLike[str], *, device: str | torch.device | None = None,
               dtype: str | torch.dtype | None = None, allow_unverified: bool | None = None,
               download: bool = True, progress: bool = True, exact: bool = False,
               backend: str | None = None) -> nn.Module:
    """Load a known model by name (``"v1.4"``, ``"GFPGANv1.3"``, ``"CodeFormer"``, …) or any weights file
    of a face restorer we recognise (GFPGAN, RestoreFormer, RestoreFormer++, CodeFormer).

    The model comes back in eval mode without gradients, on ``device`` (auto: CUDA > MPS > CPU) in
    ``dtype`` (fp32 unless asked). :func:`load_model_with_info` also says where the weights came from
    and whether they are seeded random weights.

    Models run with the fastest kernels measured for their device and dtype (each architecture's
    ``speed_up``: for GFPGAN Winograd convolutions on CPUs in fp32, channels-last elsewhere); their
    outputs differ from the official code's by float rounding (about 1e-5 on the [-1, 1] scale).
    ``exact=True`` keeps the reference kernels: the official outputs bit for bit.
    ``backend`` (GFPGAN restorers; :data:`gfp_core.options.BACKENDS`, default 'auto' or ``GFP_BACKEND``):
    'openvino' runs the forward pass on OpenVINO's CPU runtime (:mod:`gfp_core.backends`), 'auto'
    does so where it is installed and measured faster; other models always run on PyTorch.
    """
    return load_model_with_info(ref, device=device, dtype=dtype, allow_unverified=allow_unverified,
                                download=download, progress=progress, exact=exact, backend=backend).module


def load_model_with_info(ref: str | os.PathLike[str], *, device: str | torch.device | None = None,
                         dtype: str | torch.dtype | None = None, allow_unverified: bool | None = None,
                         download: bool = True, progress: bool = True, exact: bool = False,
                         backend: str | None = None) -> LoadedModel:
    """:func:`load_model`, and beside the module a :class:`ModelInfo`: its file, how it was found,
    whether its SHA-256 was verified, whether it is synthetic."""
    target = resolve_device(device)
    target_dtype = resolve_dtype(dtype, target)  # bad options fail before any file is read
    if backend is not None:
        check_backend(backend)
    resolved = resolve_weights(ref, download=download, allow_unverified=allow_unverified, progress=progress)
    state, metadata = read_checkpoint(resolved.path)
    model, arch = build_for(state, resolved.spec, str(resolved.path))
    _adopt(model, adapt_state(arch, state), arch, str(resolved.path))
    model.eval().requires_grad_(False)
    model.to(device=target, dtype=target_dtype)
    if not exact and arch.speed_up is not None:
        arch.speed_up(model, target)
    model, used = select_backend(model, backend, exact=exact)
    info = ModelInfo(arch=arch.name, path=str(resolved.path), source=resolved.source,
                     name=resolved.spec.name if resolved.spec else None, verified=resolved.verified,
                     synthetic=is_synthetic(metadata), exact=exact, backend=used)
    return LoadedModel(model, info)
