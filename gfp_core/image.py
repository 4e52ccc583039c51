"""The one image-conversion helper: files ↔ RGB arrays ↔ model tensors.

Public images are RGB ``H×W×3`` arrays (uint8, or float32 in [0, 1]). The model sees NCHW tensors
in [-1, 1]. Conversions round the way the official code does, so outputs match it pixel for pixel.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import InvalidImageError


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8, applying its EXIF orientation."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InvalidImageError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                return np.repeat(np.clip(arr / 257.0 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImageError(f"{path}: not a readable image ({exc})") from exc


def save_rgb(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 array; the format follows the file extension."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(as_uint8(image)).save(path)
    return path


def as_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 stays; float in [0, 1] is scaled and rounded."""
    if image.dtype == np.uint8:
        return image
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    raise InvalidImageError(f"unsupported image dtype {image.dtype}; use uint8 or float in [0, 1]")


def faces_to_tensor(faces: np.ndarray, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RGB face crops ``[N,H,W,3]`` or ``[H,W,3]`` (uint8 or float [0,1]) → ``[N,3,H,W]`` in [-1, 1]."""
    arr = np.asarray(faces)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InvalidImageError(f"expected RGB faces of shape [N, H, W, 3], got {list(arr.shape)}")
    if arr.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    else:
        raise InvalidImageError(f"unsupported face dtype {arr.dtype}; use uint8 or float in [0, 1]")
    t = t.permute(0, 3, 1, 2).contiguous().to(device=device)
    return ((t - 0.5) / 0.5).to(dtype)


def tensor_to_faces(t: torch.Tensor) -> np.ndarray:
    """``[N,3,H,W]`` in [-1, 1] → RGB uint8 ``[N,H,W,3]``, rounded like the official code."""
    t = (t.detach().float().clamp(-1, 1) + 1) / 2
    return (t * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
