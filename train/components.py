"""Eye and mouth boxes for the facial-component losses.

The official landmarks file (``FFHQ_eye_mouth_landmarks_512.pth``) maps ``'%08d' % index`` to
``{'left_eye': [x, y, half], 'right_eye': …, 'mouth': …}``: the centre and the half side of a square
in 512-pixel coordinates ('left' = the eye on the image's left). For other face sets the boxes are
computed once from the detector's 5 landmarks and cached in the same format, keyed by file name.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from gfp_core.errors import GFPError, UnsupportedCheckpointError
from gfp_core.weights.checkpoint import read_raw

from .checkpoint import save_atomic
from .config import ConfigError

log = logging.getLogger(__name__)

PARTS = ("left_eye", "right_eye", "mouth")
#: half sides relative to the 5-point geometry, fitted to FFHQ's 68-landmark boxes at 512 px
EYE_HALF_PER_EYE_DISTANCE = 0.18
MOUTH_HALF_PER_MOUTH_WIDTH = 0.55
MIN_HALF_512 = 16.0  # the official parser's minimum half side

Boxes = dict[str, np.ndarray]  # part → [x, y, half] in the image's pixels


def read_landmarks_file(path: str | Path) -> dict[str, Boxes]:
    """An official-format landmarks file, read safely (tensors, numpy arrays and numbers only)."""
    path = Path(path)
    multiarray = getattr(np, "_core", None) or np.core
    # numpy arrays and scalars are rebuilt by these two functions; files from numpy 1 and 2 name
    # their module differently
    safe: list = [np.ndarray, np.dtype, *(type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32"))]
    for fn in (multiarray.multiarray._reconstruct, multiarray.multiarray.scalar):
        safe += [(fn, f"numpy.core.multiarray.{fn.__name__}"), (fn, f"numpy._core.multiarray.{fn.__name__}")]
    try:
        raw, _ = read_raw(path, allowed_globals=safe)
    except GFPError as exc:
        raise UnsupportedCheckpointError(
            f"{path} is not a readable landmarks file (a dict of {{'left_eye', 'right_eye', 'mouth'}} boxes "
            f"saved with torch.save; only tensors, numpy arrays and numbers are accepted): {exc}") from exc
    out: dict[str, Boxes] = {}
    for key, item in raw.items():
        try:
            out[str(key)] = {part: np.asarray(item[part], dtype=np.float64).reshape(3) for part in PARTS}
        except (KeyError, TypeError, ValueError) as exc:
            raise UnsupportedCheckpointError(f"{path}: entry {key!r} is not {{part: [x, y, half]}} for "
                                             f"{', '.join(PARTS)} ({exc})") from None
    return out


def write_landmarks_file(boxes: Mapping[str, Boxes], path: str | Path) -> Path:
    """Save in the official format (numbers as float64 tensors, so it loads with weights_only)."""
    data = {key: {part: torch.as_tensor(np.asarray(b[part], dtype=np.float64)) for part in PARTS}
            for key, b in boxes.items()}
    return save_atomic(data, Path(path))


def boxes_from_five_points(points: np.ndarray, size: int) -> Boxes:
    """Eye and mouth squares from 5 landmarks (eyes, nose, mouth corners) in a ``size`` crop."""
    pts = np.asarray(points, dtype=np.float64)
    eye_half = max(EYE_HALF_PER_EYE_DISTANCE * np.linalg.norm(pts[1] - pts[0]), MIN_HALF_512 * size / 512)
    mouth_half = max(MOUTH_HALF_PER_MOUTH_WIDTH * np.linalg.norm(pts[4] - pts[3]), MIN_HALF_512 * size / 512)
    mouth = (pts[3] + pts[4]) / 2
    return {"left_eye": np.array([*pts[0], eye_half]), "right_eye": np.array([*pts[1], eye_half]),
            "mouth": np.array([*mouth, mouth_half])}


def detect_boxes(paths: Sequence[Path], size: int, cache: Path) -> dict[str, Boxes]:
    """Boxes for every image, from the embedded detector (the template where it finds no face),
    cached in ``cache`` by file name; only images missing from the cache are detected."""
    from gfp_core.face.align import face_template
    from gfp_core.face.detection import EmbeddedRetinaFace, detect_faces
    from gfp_core.image import load_rgb

    boxes = read_landmarks_file(cache) if cache.is_file() else {}
    missing = [p for p in paths if p.name not in boxes]
    if missing:
        detector = EmbeddedRetinaFace()
        template = face_template(size)
        fallback = 0
        for p in missing:
            img = load_rgb(p)
            scale = size / img.shape[0]
            faces = detect_faces(detector, img, max_side=None)
            if faces:  # an aligned crop: the face nearest the centre is the one
                centre = np.array(img.shape[1::-1]) / 2
                face = min(faces, key=lambda f: np.linalg.norm(f.landmarks.mean(0) - centre))
                points = face.landmarks * scale
            else:
                points, fallback = template, fallback + 1
            boxes[p.name] = boxes_from_five_points(points, size)
        if fallback:
            log.warning("no face found in %d of %d images; their boxes come from the FFHQ template", fallback,
                        len(missing))
        write_landmarks_file(boxes, cache)
    return boxes


class ComponentBoxes:
    """Boxes per dataset image, as ``[x1, y1, x2, y2]`` rows for ``roi_align`` (official conversion)."""

    def __init__(self, boxes: Mapping[str, Boxes], names: Sequence[str], size: int, scale: float,
                 eye_enlarge_ratio: float):
        self.size = size
        self.eye_enlarge_ratio = eye_enlarge_ratio
        self.items: list[Boxes] = []
        for index, name in enumerate(names):
            found = boxes.get(name, boxes.get(Path(name).stem, boxes.get(f"{index:08d}")))
            if found is None:
                raise ConfigError(f"the landmarks file has no boxes for {name} (looked up by file name, "
                                  f"stem and '{index:08d}'); use data.components=detect to compute them")
            self.items.append({part: found[part] * scale for part in PARTS})

    def locations(self, index: int, flipped: bool) -> np.ndarray:
        """``[3, 4]``: left eye, right eye, mouth boxes; a flipped image swaps and mirrors the eyes."""
        item = self.items[index]
        if flipped:  # mirrored as the official dataset does (x → size - x)
            mirror = {part: np.array([self.size - b[0], b[1], b[2]]) for part, b in item.items()}
            item = {"left_eye": mirror["right_eye"], "right_eye": mirror["left_eye"], "mouth": mirror["mouth"]}
        rows = []
        for part in PARTS:
            x, y, half = item[part]
            if part != "mouth":
                half *= self.eye_enlarge_ratio
            rows.append([x - half + 1, y - half + 1, x + half, y + half])
        return np.asarray(rows, dtype=np.float32)


def load_components(setting: str, paths: Sequence[Path], size: int, cache: Path,
                    eye_enlarge_ratio: float) -> ComponentBoxes:
    """``setting``: 'detect', or a landmarks file (registry name such as ffhq_eye_mouth_landmarks, or path)."""
    if setting == "detect":
        boxes, scale = detect_boxes(paths, size, cache), 1.0
    else:
        from gfp_core.weights import resolve_weights

        boxes, scale = read_landmarks_file(resolve_weights(setting).path), size / 512  # the file is 512 px
    return ComponentBoxes(boxes, [p.name for p in paths], size, scale, eye_enlarge_ratio)
