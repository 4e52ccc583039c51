"""The face stages over a batch of frames (video frames, or a ComfyUI IMAGE batch), one call each.

These are the stages of :mod:`gfp_core.engine` (the one orchestrator) under the names the stage
nodes have always used. A :class:`FaceSet` records, per frame, the faces found and chosen and their
alignments; crops of all frames travel as one flat batch in frame order, so frames may hold
different numbers of faces, none included.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InvalidImageError
from ..engine import (FaceSet, background_frames, choose_faces, crop_faces, detect_frames, mask_faces,
                      paste_frames, _check_frames)
from .detection import MIN_EYE_DISTANCE, FaceDetector


def detect_batch(detector: FaceDetector, frames: Sequence[np.ndarray], *, face_size: int = 512,
                 score_threshold: float | None = None, min_size: float = 0,
                 min_eye_distance: float = MIN_EYE_DISTANCE,
                 select: str = "all", indices: Sequence[int] | None = None,
                 max_faces: int | None = None) -> FaceSet:
    """Detect and choose faces in every frame and compute their alignments (the engine's detect and
    choose stages). A frame without faces, or without a face an index asks for, is not an error."""
    found = detect_frames(detector, frames, score_threshold=score_threshold, min_size=min_size,
                          min_eye_distance=min_eye_distance)
    return choose_faces(found, [np.shape(f)[:2] for f in frames], select=select, indices=indices,
                        max_faces=max_faces, face_size=face_size)


def crop_batch(frames: Sequence[np.ndarray], faces: FaceSet) -> np.ndarray:
    """Aligned crops of every face, frame after frame: ``[total, S, S, 3]``."""
    return crop_faces(frames, faces)


def paste_batch(frames: Sequence[np.ndarray], faces: FaceSet, crops: np.ndarray, *, mask: str = "box",
                feather: float = 0.0, visibility: float = 1.0, upscale: float = 1.0,
                parser=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Paste (possibly edited) crops back into their frames (RGB, uint8 or float in [0, 1]; the
    dtype is kept). Crops of another size than the set's are resized first. Returns the frames and,
    per frame, the coverage mask (``H×W`` float32 in [0, 1]: how much of each pixel is the face)."""
    import cv2

    _check_frames(frames, faces)
    s = faces.face_size
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise InvalidImageError(f"face crops must be a batch of RGB images [N, H, W, 3], got {list(crops.shape)}")
    if crops.shape[1:3] != (s, s) and len(crops):  # masks are made at the set's crop size
        crops = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA if c.shape[0] > s
                                     else cv2.INTER_LINEAR) for c in crops])
    faces.split(crops)  # a wrong number of crops is refused before any work
    masks = mask_faces(faces, crops, mode=mask, upscale=upscale, parser=parser, feather=feather)
    images, coverage = paste_frames(background_frames(frames, upscale), faces, crops, masks,
                                    visibility=visibility, upscale=upscale, coverage=True)
    return images, coverage


__all__ = ["FaceSet", "crop_batch", "detect_batch", "paste_batch"]
