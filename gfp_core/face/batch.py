"""The face stages over a batch of frames (video frames, or a ComfyUI IMAGE batch).

A :class:`FaceSet` records, per frame, the chosen faces and their alignments. Crops of all frames
travel as one flat batch in frame order; the set knows which crop belongs to which frame, so
frames may hold different numbers of faces, none included.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from ..errors import InvalidImageError
from .align import estimate_alignment, inverse_alignment, warp_face
from .detection import MIN_EYE_DISTANCE, FaceDetector, detect_faces
from .masks import face_masks
from .paste import paste_faces
from .select import select_faces
from .types import Face


@dataclass
class FaceSet:
    """Faces of a batch of frames: ``faces[i]`` and ``affines[i]`` (``[n_i, 2, 3]``) for frame ``i``."""

    faces: list[list[Face]]
    affines: list[np.ndarray]
    frame_sizes: list[tuple[int, int]]  # (height, width)
    face_size: int = 512
    detected: list[int] = field(default_factory=list)  # faces found per frame, before choosing

    @property
    def counts(self) -> list[int]:
        return [len(f) for f in self.faces]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def split(self, crops: np.ndarray) -> list[np.ndarray]:
        """A flat crop batch → one array per frame."""
        if len(crops) != self.total:
            raise InvalidImageError(f"got {len(crops)} face crops, but these faces need {self.total} "
                                    f"({', '.join(map(str, self.counts))} per frame)")
        bounds = np.cumsum([0, *self.counts])
        return [crops[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def detect_batch(detector: FaceDetector, frames: Sequence[np.ndarray], *, face_size: int = 512,
                 score_threshold: float | None = None, min_size: float = 0,
                 min_eye_distance: float = MIN_EYE_DISTANCE,
                 select: str = "all", indices: Sequence[int] | None = None,
                 max_faces: int | None = None) -> FaceSet:
    """Detect and choose faces in every frame (RGB uint8) and compute their alignments."""
    faces, affines, detected = [], [], []
    for frame in frames:
        found = detect_faces(detector, frame, score_threshold=score_threshold, min_size=min_size,
                             min_eye_distance=min_eye_distance)
        chosen = select_faces(found, frame.shape[:2], select, indices, max_faces)
        faces.append(chosen)
        affines.append(np.stack([estimate_alignment(f.landmarks, face_size) for f in chosen]) if chosen
                       else np.zeros((0, 2, 3)))
        detected.append(len(found))
    return FaceSet(faces, affines, [f.shape[:2] for f in frames], face_size, detected)


def crop_batch(frames: Sequence[np.ndarray], faces: FaceSet) -> np.ndarray:
    """Aligned crops of every face, frame after frame: ``[total, S, S, 3]``."""
    _check_frames(frames, faces)
    s = faces.face_size
    # the alignments were estimated at detection: warp with them rather than estimating again
    crops = [warp_face(frame, a, s) for frame, affines in zip(frames, faces.affines) for a in affines]
    return np.stack(crops) if crops else np.zeros((0, s, s, 3), np.uint8)


def paste_batch(frames: Sequence[np.ndarray], faces: FaceSet, crops: np.ndarray, *, mask: str = "box",
                feather: float = 0.0, visibility: float = 1.0, upscale: float = 1.0,
                parser=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Paste (possibly edited) crops back into their frames.

    Crops of another size than the set's are resized first. Returns the frames and, per frame, the
    coverage mask (``H×W`` float32 in [0, 1]: how much of each pixel is the restored face).
    """
    from ..background import upscale_background

    _check_frames(frames, faces)
    s = faces.face_size
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise InvalidImageError(f"face crops must be a batch of RGB images [N, H, W, 3], got {list(crops.shape)}")
    if crops.shape[1:3] != (s, s):
        crops = np.stack([cv2.resize(c, (s, s), interpolation=cv2.INTER_AREA if c.shape[0] > s
                                     else cv2.INTER_LINEAR) for c in crops]) if len(crops) else \
            np.zeros((0, s, s, 3), crops.dtype)
    images, coverage = [], []
    for frame, fs, affines, frame_crops in zip(frames, faces.faces, faces.affines, faces.split(crops)):
        background = frame.copy() if upscale == 1 else upscale_background(frame, upscale)
        h, w = background.shape[:2]
        if not fs:
            images.append(background)
            coverage.append(np.zeros((h, w), np.float32))
            continue
        masks = face_masks(mask, fs, affines, frame_crops, face_size=s, upscale=upscale, parser=parser,
                           feather=feather)
        inverse = [inverse_alignment(a, upscale=upscale) for a in affines]
        images.append(paste_faces(background, frame_crops, inverse, masks, visibility=visibility, inplace=True))
        ones = np.ones((len(fs), s, s, 3), np.float32)
        cover = paste_faces(np.zeros((h, w, 3), np.float32), ones, inverse, masks, visibility=visibility,
                            inplace=True)
        coverage.append(cover[..., 0])
    return images, coverage


def _check_frames(frames: Sequence[np.ndarray], faces: FaceSet) -> None:
    sizes = [f.shape[:2] for f in frames]
    if len(frames) != len(faces.faces) or any(tuple(a) != tuple(b) for a, b in zip(sizes, faces.frame_sizes)):
        raise InvalidImageError(f"these faces were found in {len(faces.faces)} frame(s) of size(s) "
                                f"{sorted(set(faces.frame_sizes))}, but the images are {len(frames)} frame(s) "
                                f"of size(s) {sorted(set(sizes))}")
