"""A picture of what the detector found: boxes, the five landmarks and each face's index."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from .types import Face

#: left eye, right eye, nose, mouth left, mouth right (RGB)
LANDMARK_COLOURS = ((255, 64, 64), (64, 255, 64), (64, 128, 255), (255, 255, 0), (255, 0, 255))


def draw_faces(image: np.ndarray, faces: Sequence[Face], numbers: Sequence[int] | None = None) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with every face's box, landmarks and number: ``numbers`` (a
    video's track ids), else its reading-order index."""
    out = np.ascontiguousarray(image.copy())
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for index, face in zip(numbers if numbers is not None else range(len(faces)), faces):
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 255), thickness)
        for (x, y), colour in zip(face.landmarks, LANDMARK_COLOURS):
            cv2.circle(out, (int(round(x)), int(round(y))), thickness + 1, colour, -1)
        scale = max(0.4, (x2 - x1) / 120)
        cv2.putText(out, str(index), (x1, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 255),
                    thickness, cv2.LINE_AA)
    return out
