"""5-point alignment to the FFHQ template and its inverse, numerically the same as facexlib's
``FaceRestoreHelper`` (the official GFPGAN helper).

Coordinates follow OpenCV's pixel-centre convention: pixel ``(x, y)`` is the point ``(x, y)``.
An *affine* maps image → crop coordinates; an *inverse affine* maps crop → output coordinates
(the output being the input image, optionally upscaled).
"""
from __future__ import annotations

from typing import Literal, Sequence

import cv2
import numpy as np

from ..errors import GFPError, InvalidImageError
from .types import Face

#: FFHQ 5-point template for a 512×512 crop (eyes, nose, mouth corners as seen in the image)
FFHQ_TEMPLATE_512 = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                              [201.26117, 371.41043], [313.08905, 371.15118]], dtype=np.float64)

#: the official crop border colour, (135, 133, 132) given to OpenCV on a BGR image, here in RGB
BORDER_RGB = (132, 133, 135)

BorderMode = Literal["constant", "reflect101", "reflect"]
_BORDERS = {"constant": cv2.BORDER_CONSTANT, "reflect101": cv2.BORDER_REFLECT101, "reflect": cv2.BORDER_REFLECT}


def face_template(face_size: int = 512) -> np.ndarray:
    """The FFHQ template ``[5, 2]`` (float64) scaled to a ``face_size`` square crop."""
    return FFHQ_TEMPLATE_512 * (face_size / 512.0)


def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray | None:
    """Least-squares similarity (Umeyama without reflection); fallback when LMEDS finds no model."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var = (s ** 2).sum()
    if var < 1e-12:
        return None
    a = (s * d).sum() / var                                      # scale·cos
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / var      # scale·sin
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (mu_d - rot @ mu_s)[:, None]])


def estimate_alignment(landmarks: np.ndarray, face_size: int = 512) -> np.ndarray:
    """The 2×3 similarity (float64) that maps a face's 5 landmarks onto the FFHQ template.

    Same estimator as the official helper (``cv2.estimateAffinePartial2D`` with LMEDS).
    """
    pts = np.asarray(landmarks)
    if pts.shape != (5, 2):
        raise GFPError(f"expected 5 landmarks of shape [5, 2], got {list(pts.shape)}")
    if not np.all(np.isfinite(pts)):
        raise GFPError("face landmarks contain NaN or infinity; check the detector output")
    template = face_template(face_size)
    affine = cv2.estimateAffinePartial2D(pts, template, method=cv2.LMEDS)[0]
    if affine is None:  # degenerate input (e.g. nearly coincident points): plain least squares
        affine = _similarity_lstsq(pts.astype(np.float64), template)
    if affine is None:
        raise GFPError("face landmarks are degenerate (all at one point); the face cannot be aligned")
    return affine.astype(np.float64)


def _border_value(image: np.ndarray) -> tuple[float, ...]:
    scale = 1.0 if image.dtype == np.uint8 else 1.0 / 255.0  # float images are in [0, 1]
    return tuple(v * scale for v in BORDER_RGB) + (0.0,)


def warp_face(image: np.ndarray, affine: np.ndarray, face_size: int = 512,
              border_mode: BorderMode = "constant") -> np.ndarray:
    """The aligned ``face_size``² crop of ``image`` (same dtype), bilinear like the official helper.

    Pixels from outside the image get the official grey (``border_mode='constant'``) or a reflection.
    """
    if border_mode not in _BORDERS:
        raise GFPError(f"border_mode must be one of {', '.join(_BORDERS)}, not {border_mode!r}")
    return cv2.warpAffine(image, np.asarray(affine, dtype=np.float64), (face_size, face_size),
                          flags=cv2.INTER_LINEAR, borderMode=_BORDERS[border_mode],
                          borderValue=_border_value(image))


def inverse_alignment(affine: np.ndarray, upscale: float = 1.0,
                      offset: Literal["centre", "official", "none"] = "centre") -> np.ndarray:
    """The 2×3 map from crop coordinates to the output image (the input upscaled by ``upscale``).

    Like the official ``get_inverse_affine``: ``invertAffineTransform(affine) * upscale``, translation
    included, plus a half-pixel translation that depends on ``offset``:

    * ``'centre'`` (default): ``0.5 * (upscale - 1)``, exact for a background resized with
      ``cv2.resize`` (which treats pixels as squares with centres at ``i + 0.5``);
    * ``'official'``: ``0.5 * upscale`` when ``upscale > 1``, what the official
      ``paste_faces_to_input_image`` adds; it puts the face half an output pixel right of and below
      the resized background;
    * ``'none'``: nothing, the official ``get_inverse_affine`` matrix itself.
    """
    inv = cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64)) * upscale
    if offset == "centre":
        inv[:, 2] += 0.5 * (upscale - 1.0)
    elif offset == "official":
        inv[:, 2] += 0.5 * upscale if upscale > 1 else 0.0
    elif offset != "none":
        raise GFPError(f"offset must be 'centre', 'official' or 'none', not {offset!r}")
    return inv


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine to ``[N, 2]`` points (e.g. landmarks into crop coordinates)."""
    pts = np.asarray(points, dtype=np.float64)
    a = np.asarray(affine, dtype=np.float64)
    return pts @ a[:, :2].T + a[:, 2]


def affine_scale(affine: np.ndarray) -> float:
    """The isotropic scale of a similarity (output pixels per input pixel)."""
    a = np.asarray(affine, dtype=np.float64)
    return float(np.sqrt(abs(np.linalg.det(a[:, :2]))))


def align_faces(image: np.ndarray, faces: Sequence[Face], face_size: int = 512,
                border_mode: BorderMode = "constant") -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops ``[N, S, S, 3]`` (image dtype) and their affines ``[N, 2, 3]`` (float64)."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(f"expected an RGB image of shape [H, W, 3], got {list(image.shape)}")
    affines = np.stack([estimate_alignment(f.landmarks, face_size) for f in faces]) if faces else \
        np.zeros((0, 2, 3), dtype=np.float64)
    crops = np.zeros((len(faces), face_size, face_size, 3), dtype=image.dtype)
    for i, affine in enumerate(affines):
        crops[i] = warp_face(image, affine, face_size, border_mode)
    return crops, affines
