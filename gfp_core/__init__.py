"""gfp_core: GFPGAN face restoration — architectures, weights, the one restoration engine and the CLI.

``from gfp_core import FaceRestorer, load_model, restore_aligned`` works; heavy modules (torch) are
imported on first use, so ``import gfp_core`` itself stays cheap.

==========================  ===================================================================
Name                        What it is for
==========================  ===================================================================
FaceRestorer                restore the faces of whole photos: model names in, a RestoreResult out
RestoreResult               what FaceRestorer.restore found and did (image, faces, crops, notes)
Engine                      the one orchestrator (detect, choose, align, restore, mask, paste)
EngineOptions               what the Engine does; checks every option (gfp_core.options)
EngineResult                what Engine.run found and did, for one picture or a batch of frames
restore_frames              one call: Engine(model, **options).run(images)
restore_aligned             restore aligned 512×512 face crops with a loaded model
load_model                  a registry name or weights file → a ready module (safe loading only)
load_model_with_info        the same, and beside the module a ModelInfo (file, source, verified, synthetic)
ModelInfo                   where a loaded model's weights came from, and what they are
resolve_weights             a model reference → a verified file on disk (local, cache or download)
convert_checkpoint          .pth ↔ .safetensors, verified bit for bit
load_detector               a face detector by name (falls back to the embedded one offline)
load_background_upsampler   a Real-ESRGAN background upsampler by name
read_picture                read an image file (any mode; alpha, grey, 16 bits kept)
write_image                 write an image file atomically, in the format its suffix names
GFPGANv1Clean, GFPGANv1     the architectures, with the official checkpoints' parameter names
options                     every choice (masks, faces, detectors, …) and range, defined once
GFPError                    the base of every error a user can cause; messages say what to do
InvalidOptionError          a bad option: ``.setting`` (canonical name), ``.value``, ``.allowed``
FaceSelectionError          a face choice that is unknown or does not fit the faces found
InvalidImageError           an image that cannot be read or used
UnknownModelError           a model name the registry does not know
WeightsNotFoundError        weights neither on disk nor obtainable (e.g. offline)
ChecksumMismatchError       a weights file whose SHA-256 differs from the registry's
UnsafeCheckpointError       a checkpoint that would need arbitrary unpickling; refused
UnsupportedCheckpointError  a file that is no readable checkpoint of a known architecture
==========================  ===================================================================
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import (ChecksumMismatchError, FaceSelectionError, GFPError, InvalidImageError, InvalidOptionError,
                     UnknownModelError, UnsafeCheckpointError, UnsupportedCheckpointError, WeightsNotFoundError)

__version__ = "0.1.0"

_LAZY = {
    "load_model": "gfp_core.weights",
    "load_model_with_info": "gfp_core.weights",
    "ModelInfo": "gfp_core.weights",
    "resolve_weights": "gfp_core.weights",
    "convert_checkpoint": "gfp_core.weights",
    "restore_aligned": "gfp_core.restore",
    "Engine": "gfp_core.engine",
    "EngineOptions": "gfp_core.engine",
    "EngineResult": "gfp_core.engine",
    "restore_frames": "gfp_core.engine",
    "FaceRestorer": "gfp_core.pipeline",
    "RestoreResult": "gfp_core.pipeline",
    "load_detector": "gfp_core.face.detection",
    "load_background_upsampler": "gfp_core.background",
    "read_picture": "gfp_core.image",
    "write_image": "gfp_core.image",
    "GFPGANv1Clean": "gfp_core.archs",
    "GFPGANv1": "gfp_core.archs",
}

__all__ = ["ChecksumMismatchError", "FaceSelectionError", "GFPError", "InvalidImageError", "InvalidOptionError",
           "UnknownModelError", "UnsafeCheckpointError", "UnsupportedCheckpointError", "WeightsNotFoundError",
           "__version__", "options", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "options":
        return importlib.import_module("gfp_core.options")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gfp_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
