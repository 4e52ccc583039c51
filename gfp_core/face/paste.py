"""Paste restored face crops back into the (optionally upscaled) image.

Each face is warped only into the bounding rectangle of its mask's footprint in the output, so the
cost of a face grows with its area, never with the image's. Pixels outside every mask are left
exactly as they were. Faces are composited in order: where two overlap, the later one is on top.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..errors import GFPError, InvalidImageError
from .align import affine_scale
from .masks import box_mask


def _per_face(items: np.ndarray | Sequence[np.ndarray], n: int, what: str, shared_ndim: int) -> list[np.ndarray]:
    """One item per face; a single item of ``shared_ndim`` dimensions is used for every face."""
    if isinstance(items, np.ndarray) and items.ndim == shared_ndim:
        return [items] * n
    out = list(items)
    if len(out) != n:
        raise GFPError(f"got {n} restored faces but {len(out)} {what}; pass one per face")
    return out


def face_roi(mask: np.ndarray, inverse_affine: np.ndarray, height: int, width: int) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``: where a crop mask can be non-zero once warped into an ``height×width`` output
    (clipped to it), or None if nowhere."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    # a bilinear sample is non-zero up to one crop pixel beyond the support
    r0, r1, c0, c1 = rows[0] - 1, rows[-1] + 1, cols[0] - 1, cols[-1] + 1
    corners = np.array([[c0, r0], [c1, r0], [c0, r1], [c1, r1]], dtype=np.float64)
    a = np.asarray(inverse_affine, dtype=np.float64)
    pts = corners @ a[:, :2].T + a[:, 2]
    x0 = max(math.floor(pts[:, 0].min()) - 1, 0)
    y0 = max(math.floor(pts[:, 1].min()) - 1, 0)
    x1 = min(math.ceil(pts[:, 0].max()) + 2, width)
    y1 = min(math.ceil(pts[:, 1].max()) + 2, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def paste_faces(background: np.ndarray, restored_crops: np.ndarray | Sequence[np.ndarray],
                inverse_affines: np.ndarray | Sequence[np.ndarray],
                masks: np.ndarray | Sequence[np.ndarray] | None = None, visibility: float = 1.0,
                *, upscale: float = 1.0, inplace: bool = False) -> np.ndarray:
    """Blend restored crops into ``background`` and return the result (same shape and dtype).

    ``background``: ``H×W×3`` (or ``×4``, alpha kept) uint8 or float32 in [0, 1], already at the output
    size. ``restored_crops``: ``[N, S, S, 3]`` (uint8 or float in [0, 1]). ``inverse_affines``:
    ``[N, 2, 3]`` crop → output maps (:func:`~gfp_core.face.align.inverse_alignment`). ``masks``: crop
    space float ``[S, S]`` (shared) or one per face, resized if the crop size differs; None = the
    official box mask for each face's scale (``upscale`` is then the output/input size ratio).
    ``visibility``: 0 keeps the original pixels, 1 the restored face. uint8 images are blended in
    float32 inside each face's rectangle and rounded.
    """
    if not 0.0 <= float(visibility) <= 1.0:
        raise GFPError(f"visibility must be in [0, 1], got {visibility}")
    if background.ndim != 3 or background.shape[2] not in (3, 4):
        raise InvalidImageError(f"expected a background of shape [H, W, 3], got {list(background.shape)}")
    if background.dtype != np.uint8 and not np.issubdtype(background.dtype, np.floating):
        raise InvalidImageError(f"unsupported image dtype {background.dtype}; use uint8 or float in [0, 1]")
    # a single face may come without its batch axis
    crops = [restored_crops] if isinstance(restored_crops, np.ndarray) and restored_crops.ndim == 3 \
        else list(restored_crops)
    affine_arr = np.asarray(inverse_affines, dtype=np.float64)
    affines = _per_face(affine_arr[None] if affine_arr.ndim == 2 else affine_arr, len(crops), "inverse affines",
                        shared_ndim=-1)
    if masks is None:
        mask_list = [box_mask(c.shape[0], affine_scale(a), upscale) for c, a in zip(crops, affines)]
    else:
        mask_list = _per_face(masks, len(crops), "masks", shared_ndim=2)

    out = background if inplace else background.copy()
    height, width = out.shape[:2]
    is_uint8 = out.dtype == np.uint8
    for crop, affine, mask in zip(crops, affines, mask_list):
        if crop.ndim != 3 or crop.shape[2] != 3:
            raise InvalidImageError(f"expected RGB face crops [S, S, 3], got {list(crop.shape)}")
        mask = np.asarray(mask, dtype=np.float32)
        if mask.shape != crop.shape[:2]:
            mask = cv2.resize(mask, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
        roi = face_roi(mask, affine, height, width)
        if roi is None or visibility == 0:
            continue
        x0, y0, x1, y1 = roi
        local = np.asarray(affine, dtype=np.float64).copy()
        local[:, 2] -= (x0, y0)  # the same map, with the rectangle's corner as origin
        size = (x1 - x0, y1 - y0)
        # replicate: no dark fringe from outside the crop, whatever the mask does at its edge
        face = cv2.warpAffine(crop, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=0)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        alpha *= np.float32(visibility)
        face = face.astype(np.float32)
        if crop.dtype == np.uint8 and not is_uint8:
            face /= 255.0
        elif crop.dtype != np.uint8 and is_uint8:
            face *= 255.0
        np.clip(face, 0.0, 255.0 if is_uint8 else 1.0, out=face)  # a blend of in-range values stays in range
        region = out[y0:y1, x0:x1, :3]
        base = region.astype(np.float32)
        blended = base + alpha[..., None] * (face - base)  # alpha 0 gives base exactly
        region[...] = np.rint(blended) if is_uint8 else blended
    return out
