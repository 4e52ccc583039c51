"""Soft paste-back masks in crop space: float32 ``[S, S]`` in [0, 1], 1 where the restored face wins.

* ``box_mask``: the official non-parsing mask (an eroded, Gaussian-feathered square), with the
  official erosion/blur sizes converted from output pixels to crop pixels.
* ``ellipse_mask``: an ellipse around eyes, brows, nose, mouth and chin from the 5 crop landmarks.
* ``parsing_mask``: the face classes of a face-parsing label map, blurred as the official parse branch;
  ``parse_face`` makes that label map with facexlib's ParseNet (the official choice) or BiSeNet.
"""
from __future__ import annotations

import math
from typing import Iterable, Literal, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import GFPError, InvalidImageError
from ..options import MASKS, PARSE_SIZE

#: label order of facexlib's ParseNet (CelebAMask-HQ as in PSFR-GAN); ``parse_face`` returns it for
#: both models
PARSE_LABELS = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
                "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
#: what the official paste keeps (its MASK_COLORMAP): everything but background, hat, necklace, neck, cloth
FACE_CLASSES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15)
#: BiSeNet (face-parsing.PyTorch) label order
BISENET_LABELS = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
                  "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
_BISENET_TO_PARSENET = np.array([PARSE_LABELS.index(n) for n in BISENET_LABELS], dtype=np.uint8)


# --- box ---------------------------------------------------------------------------------------

def _truncated_gauss_cdf(x: np.ndarray, sigma: float, radius: float) -> np.ndarray:
    """CDF of a Gaussian cut at ±radius and renormalised (what a finite, normalised kernel does)."""
    if sigma <= 0 or radius <= 0:
        return (x >= 0).astype(np.float64)
    phi = np.vectorize(lambda t: 0.5 * (1.0 + math.erf(t / (sigma * math.sqrt(2.0)))))
    lo, hi = phi(-radius), phi(radius)
    return np.clip((phi(np.clip(x, -radius, radius)) - lo) / (hi - lo), 0.0, 1.0)


def box_mask(face_size: int = 512, scale: float = 1.0, upscale: float = 1.0) -> np.ndarray:
    """The official square mask, eroded and feathered, for a crop pasted at ``scale``.

    ``scale``: output pixels per crop pixel (``affine_scale(inverse_affine)``, upscale included).
    The official paste works in output pixels: erode by ``int(2*upscale)``, then by ``2*w_edge`` with
    ``w_edge = int(sqrt(face area)) // 20``, then Gaussian blur of size ``2*w_edge + 1`` (OpenCV's
    default sigma for it). The same sizes divided by ``scale`` give this mask; the erosions are centred
    here (OpenCV's even kernels erode half a pixel more on the top/left), so the mask is symmetric.
    A Gaussian blur of a square is the outer product of two blurred 1-D steps, computed exactly.
    """
    if scale <= 0:
        raise GFPError(f"scale must be positive, got {scale}")
    k1 = max(int(2 * upscale), 1)
    side = face_size * scale - (k1 - 1)          # side of the first-eroded mask, output pixels
    w_edge = int(max(side, 0.0)) // 20
    inset = (k1 - 1) / 2 + (w_edge - 0.5 if w_edge > 0 else 0.0)   # per side, output pixels
    sigma = 0.3 * (w_edge - 1) + 0.8 if w_edge > 0 else 0.0         # cv2's sigma for ksize 2*w_edge+1
    # the warped all-ones square spans crop coordinates [-0.5, S-0.5] (bilinear, pixel centres)
    lo = -0.5 + inset / scale
    hi = face_size - 0.5 - inset / scale
    c = np.arange(face_size, dtype=np.float64)
    cdf = lambda x: _truncated_gauss_cdf(x, sigma / scale, w_edge / scale)  # noqa: E731
    profile = np.clip(cdf(c - lo) - cdf(c - hi), 0.0, 1.0)
    return np.outer(profile, profile).astype(np.float32)


# --- ellipse -----------------------------------------------------------------------------------

def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def ellipse_mask(landmarks: np.ndarray, face_size: int = 512, size: float = 1.0,
                 feather: float = 0.2) -> np.ndarray:
    """An ellipse over the inner face from 5 landmarks in *crop* coordinates.

    Its axes follow the eye line. Full strength out to half-axes of ``0.9 × eye distance`` across
    and ``1.0 × eye–mouth distance`` along the face (brows to chin on an FFHQ crop), times ``size``;
    then a smooth fall-off over a further ``feather`` of the radius. The crop's outer 1/32 is
    faded out too, so the crop's edge never shows.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2):
        raise GFPError(f"expected 5 landmarks of shape [5, 2], got {list(lm.shape)}")
    eyes, mouth = lm[:2].mean(0), lm[3:].mean(0)
    across = lm[1] - lm[0]
    eye_dist = float(np.linalg.norm(across))
    eye_mouth = float(np.linalg.norm(mouth - eyes))
    if eye_dist < 1e-6 or eye_mouth < 1e-6:
        raise GFPError("landmarks are degenerate (eyes or mouth coincide); use the box mask")
    ux = across / eye_dist
    uy = np.array([-ux[1], ux[0]])                 # perpendicular, pointing down the face
    centre = (eyes + mouth) / 2 + 0.15 * eye_mouth * uy   # slightly below mid: chin is further than brows
    a, b = 0.9 * eye_dist * size, 1.0 * eye_mouth * size
    yy, xx = np.mgrid[0:face_size, 0:face_size].astype(np.float64)
    dx, dy = xx - centre[0], yy - centre[1]
    r = np.sqrt(((dx * ux[0] + dy * ux[1]) / a) ** 2 + ((dx * uy[0] + dy * uy[1]) / b) ** 2)
    mask = _smoothstep((1.0 + feather - r) / max(feather, 1e-6))
    edge = np.minimum(np.arange(face_size) + 0.5, face_size - 0.5 - np.arange(face_size)) / (face_size / 32)
    taper = _smoothstep(edge)
    return (mask * np.outer(taper, taper)).astype(np.float32)


# --- parsing -----------------------------------------------------------------------------------

def parsing_mask(labels: np.ndarray, face_size: int | None = None,
                 classes: Iterable[int] = FACE_CLASSES) -> np.ndarray:
    """Soft mask of ``classes`` (ParseNet label order) from a label map ``[H, W]``, as the official
    parse branch: Gaussian blur (101, σ 11) twice, resized to ``face_size``, 10-pixel border cleared.

    Blur and border are in 512-pixel units: the blur scales with the label map's size, the border
    with the mask's, so a smaller label map clears the same pixels as the official 512² one.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise GFPError(f"expected a label map of shape [H, W], got {list(lab.shape)}")
    mask = np.isin(lab, np.fromiter(classes, dtype=np.int64)).astype(np.float32)
    unit = lab.shape[0] / 512.0
    ksize = max(int(round(50 * unit)), 0) * 2 + 1
    sigma = 11.0 * unit
    mask = cv2.GaussianBlur(mask, (ksize, ksize), sigma)
    mask = cv2.GaussianBlur(mask, (ksize, ksize), sigma)
    if face_size is not None and mask.shape != (face_size, face_size):
        mask = cv2.resize(mask, (face_size, face_size), interpolation=cv2.INTER_LINEAR)
    border = int(round(10 * mask.shape[0] / 512.0))
    if border > 0:
        mask[:border], mask[-border:], mask[:, :border], mask[:, -border:] = 0, 0, 0, 0
    return np.clip(mask, 0.0, 1.0)


ParserKind = Literal["parsenet", "bisenet"]
_NORMALISE = {"parsenet": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),            # the official parse branch
              "bisenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}  # ImageNet, as BiSeNet was trained


def _parser_kind(model: nn.Module, kind: ParserKind | None) -> ParserKind:
    if kind is not None:
        if kind not in _NORMALISE:
            raise GFPError(f"parser kind must be 'parsenet' or 'bisenet', not {kind!r}")
        return kind
    name = type(model).__name__.lower()
    if name in _NORMALISE:
        return name  # type: ignore[return-value]
    raise GFPError(f"cannot tell which face parser {type(model).__name__} is; pass kind='parsenet' or 'bisenet'")


def _resized(crop: np.ndarray, size: int) -> np.ndarray:
    """``crop`` at ``size``×``size``: area averaging when shrinking, so fine detail does not alias."""
    if crop.shape[:2] == (size, size):
        return crop
    shrink = crop.shape[0] > size
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@torch.no_grad()
def parse_face(model: nn.Module, crops: np.ndarray, kind: ParserKind | None = None,
               batch_size: int = 8, size: int = 512) -> np.ndarray:
    """Face-parsing labels (uint8, :data:`PARSE_LABELS` order) of RGB crops at ``size``×``size``.

    ``crops``: ``[S, S, 3]`` → ``[size, size]``, or ``[N, S, S, 3]`` → ``[N, size, size]``; uint8 or
    float in [0, 1]. Crops are resized to ``size`` (bilinearly up, by area down) and normalised as the
    official parse branch does (ParseNet: [-1, 1]; BiSeNet: ImageNet mean/std). Both networks are fully
    convolutional, so a smaller ``size`` costs about ``(size / 512)²`` of the official 512.
    BiSeNet labels are renumbered to ParseNet's.
    """
    size = PARSE_SIZE.check(size)
    kind = _parser_kind(model, kind)
    arr = np.asarray(crops)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise InvalidImageError(f"expected RGB face crops [N, S, S, 3] or [S, S, 3], got {list(np.shape(crops))}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise InvalidImageError(f"unsupported crop dtype {arr.dtype}; use uint8 or float in [0, 1]")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in _NORMALISE[kind])
    out = np.empty((len(arr), size, size), dtype=np.uint8)
    for start in range(0, len(arr), batch_size):
        chunk = [_resized(c, size) for c in arr[start:start + batch_size]]
        x = torch.from_numpy(np.stack(chunk)).to(device).permute(0, 3, 1, 2).float()
        if arr.dtype == np.uint8:
            x = x / 255.0
        x = ((x - mean) / std).to(dtype)
        logits = model(x)[0]  # both models return the parsing logits first
        if logits.shape[-2:] != (size, size):
            logits = torch.nn.functional.interpolate(logits.float(), size=(size, size), mode="bilinear",
                                                     align_corners=False)
        out[start:start + len(chunk)] = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
    if kind == "bisenet":
        out = _BISENET_TO_PARSENET[out]
    return out[0] if single else out


# --- per-face masks for a mode --------------------------------------------------------------------

MASK_MODES = MASKS.names  #: defined in gfp_core.options

#: side at which 'parsing' masks parse a crop. The label map is blurred by σ 11 twice (in 512-pixel
#: units) before use, so a quarter of the official 512² pixels pastes the same face within a grey
#: level, 3.9× faster with ParseNet (bench/bench_parsing.py); a trained parser still sees its faces at
#: half the size it was trained on, where smaller sizes would leave what it does untested
DEFAULT_PARSE_SIZE = 256


def feather_mask(mask: np.ndarray, amount: float) -> np.ndarray:
    """Soften a crop mask's edge: a Gaussian blur of ``amount`` × crop size / 8 (0 = unchanged)."""
    if amount <= 0:
        return mask
    sigma = amount * mask.shape[0] / 8
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_CONSTANT)


def face_masks(mode: str, faces: Sequence, affines: np.ndarray, restored: np.ndarray, *, face_size: int,
               upscale: float = 1.0, parser: nn.Module | None = None, feather: float = 0.0,
               parse_size: int = DEFAULT_PARSE_SIZE) -> np.ndarray:
    """One crop-space paste mask per face, ``[N, S, S]``: 'box' (the official feathered square, sized for
    each face's scale), 'ellipse' (from the face's landmarks), or 'parsing' (``parser`` run on the
    restored crops at ``parse_size``; 512 is the official size). ``feather`` softens the edge further."""
    from .align import affine_scale, inverse_alignment, transform_points

    if mode == "parsing":
        if parser is None:
            raise GFPError("the 'parsing' mask needs a face-parsing model (parsenet or bisenet)")
        labels = parse_face(parser, restored, size=parse_size)
        labels = labels[None] if labels.ndim == 2 else labels
        masks = [parsing_mask(lab, face_size) for lab in labels]
    elif mode == "ellipse":
        masks = [ellipse_mask(transform_points(f.landmarks, a), face_size) for f, a in zip(faces, affines)]
    elif mode == "box":
        masks = [box_mask(face_size, scale=affine_scale(inverse_alignment(a, upscale)), upscale=upscale)
                 for a in affines]
    else:
        MASKS.check(mode)
    if not masks:
        return np.zeros((0, face_size, face_size), np.float32)
    return np.stack([feather_mask(m, feather) for m in masks])
