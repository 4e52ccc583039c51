"""gfp_core: GFPGAN face restoration — architectures, weights, restoration and CLI.

``from gfp_core import load_model, restore_aligned`` works; heavy modules (torch) are imported
on first use, so ``import gfp_core`` itself stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import (ChecksumMismatchError, GFPError, InvalidImageError, UnknownModelError, UnsafeCheckpointError,
                     UnsupportedCheckpointError, WeightsNotFoundError)

__version__ = "0.1.0"

_LAZY = {
    "load_model": "gfp_core.weights",
    "resolve_weights": "gfp_core.weights",
    "convert_checkpoint": "gfp_core.weights",
    "restore_aligned": "gfp_core.restore",
    "Engine": "gfp_core.engine",
    "EngineOptions": "gfp_core.engine",
    "EngineResult": "gfp_core.engine",
    "FaceRestorer": "gfp_core.pipeline",
    "RestoreResult": "gfp_core.pipeline",
    "GFPGANv1Clean": "gfp_core.archs",
    "GFPGANv1": "gfp_core.archs",
}

__all__ = ["ChecksumMismatchError", "GFPError", "InvalidImageError", "UnknownModelError", "UnsafeCheckpointError",
           "UnsupportedCheckpointError", "WeightsNotFoundError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gfp_core' has no attribute {name!r}")
