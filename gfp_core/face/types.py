"""What the face stages pass between them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: landmark order everywhere: as seen in the image
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True, eq=False)  # identity equality: fields are arrays
class Face:
    """One detected face in image pixel coordinates (x right, y down).

    ``box``: ``[x1, y1, x2, y2]`` float32; ``landmarks``: ``[5, 2]`` float32 in :data:`LANDMARK_NAMES`
    order (the eye on the image's left first); ``score``: detector confidence in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def eye_distance(self) -> float:
        return float(np.linalg.norm(self.landmarks[1] - self.landmarks[0]))
