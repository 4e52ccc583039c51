"""Colour matching of a restored crop to the original, so the pasted face keeps the photo's tones."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import InvalidImageError


def _to_lab(image: np.ndarray) -> np.ndarray:
    # float input gives unquantised Lab (L in [0, 100]); uint8 Lab would lose precision
    rgb = image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image.astype(np.float32)
    return cv2.cvtColor(np.clip(rgb, 0.0, 1.0), cv2.COLOR_RGB2LAB)


def match_colour(restored_crop: np.ndarray, original_crop: np.ndarray, mask: np.ndarray | None = None,
                 strength: float = 1.0) -> np.ndarray:
    """``restored_crop`` with each Lab channel's mean and spread moved to those of ``original_crop``.

    Statistics are mask-weighted (``mask``: float ``[S, S]``, e.g. the paste mask), so hair and
    background do not count. ``strength`` blends between unchanged (0) and fully matched (1). The
    result has the restored crop's dtype (uint8 or float in [0, 1]).
    """
    if restored_crop.shape != original_crop.shape or restored_crop.ndim != 3 or restored_crop.shape[2] != 3:
        raise InvalidImageError(f"expected two RGB crops of the same shape, got {list(restored_crop.shape)} "
                                f"and {list(original_crop.shape)}")
    src, ref = _to_lab(restored_crop), _to_lab(original_crop)
    w = np.ones(src.shape[:2], np.float32) if mask is None else np.asarray(mask, np.float32)
    if w.shape != src.shape[:2]:
        w = cv2.resize(w, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_LINEAR)
    total = float(w.sum())
    if total <= 1e-6 or strength <= 0:  # nothing to match (a Lab round trip is not bit-exact)
        return restored_crop.copy()
    w = (w / total)[..., None]
    mu_s, mu_r = (src * w).sum((0, 1)), (ref * w).sum((0, 1))
    sd_s = np.sqrt(((src - mu_s) ** 2 * w).sum((0, 1)))
    sd_r = np.sqrt(((ref - mu_r) ** 2 * w).sum((0, 1)))
    matched = (src - mu_s) * (sd_r / np.maximum(sd_s, 1e-3)) + mu_r
    lab = src + strength * (matched - src)
    rgb = np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)
    if restored_crop.dtype == np.uint8:
        return np.rint(rgb * 255.0).astype(np.uint8)
    return rgb.astype(restored_crop.dtype)
