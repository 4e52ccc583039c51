"""The measures of the paper's table, each on one restored face (8-bit RGB) and, where it needs one,
its ground truth. A measure whose network cannot be had here says why, and its column is left out.

* ``psnr`` / ``ssim``: :mod:`train.metrics` (the trainer's validation; RGB, no border crop, as
  basicsr's ``calculate_psnr`` / ``calculate_ssim`` with ``crop_border=0``).
* ``lmd``: landmark distance, the mean distance in pixels between the five landmarks found on the
  restored face and on the ground truth (the embedded RetinaFace detector, so it works offline).
* ``lpips``: LPIPS (Zhang et al. 2018) with the ``lpips`` package, AlexNet backbone v0.1 (the
  package ships its linear layers; the backbone, torchvision's ImageNet AlexNet, comes through the
  weights registry as ``alexnet_imagenet``).
* ``niqe``: NIQE (:mod:`train.niqe`, no reference needed), with the pristine model of the weights
  registry's ``niqe_pris_params``.
* ``identity``: the angle in degrees between the ArcFace embeddings of the restored face and of the
  ground truth (the paper's "Deg."), ArcFace ResNet-18 through the weights registry, fed as in
  training (:func:`train.losses.grey_for_identity`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gfp_core.errors import GFPError


class MeasureUnavailable(GFPError):
    """A measure's network or package is missing; the message says what to install or download."""


@dataclass
class Measure:
    name: str
    label: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray | None], float]

    @property
    def needs_gt(self) -> bool:
        return self.name not in NO_REFERENCE


def _psnr() -> Measure:
    from .metrics import psnr

    return Measure("psnr", "PSNR (dB)", True, lambda out, gt: psnr(out, gt))


def _ssim() -> Measure:
    from .metrics import ssim

    return Measure("ssim", "SSIM", True, lambda out, gt: ssim(out, gt))


def _lmd(device: torch.device) -> Measure:
    from gfp_core.face.detection import detect_faces, load_detector

    detector = load_detector("embedded", device=device)

    def landmarks(img: np.ndarray) -> np.ndarray | None:
        faces = detect_faces(detector, img)
        if not faces:
            return None
        centre = np.array(img.shape[1::-1]) / 2  # the aligned face: the one nearest the centre
        return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - centre))).landmarks

    def distance(out: np.ndarray, gt: np.ndarray) -> float:
        found, truth = landmarks(out), landmarks(gt)
        if found is None or truth is None:
            return float("nan")  # no face found: left out of the mean, counted in the notes
        return float(np.linalg.norm(found - truth, axis=1).mean())

    return Measure("lmd", "LMD (px)", False, distance)


def _weights_file(measure: str, what: str, ref: str, download: bool) -> Path:
    """The file of ``ref`` (a registry name or a path); without it the measure is unavailable, with why."""
    from gfp_core.errors import ChecksumMismatchError, WeightsNotFoundError
    from gfp_core.weights import resolve_weights

    try:
        return resolve_weights(ref, download=download).path
    except (WeightsNotFoundError, ChecksumMismatchError) as exc:
        raise MeasureUnavailable(f"{measure}: {what} ({ref}) cannot be had here: {exc}") from exc


def _identity(device: torch.device, weights: str, download: bool) -> Measure:
    from gfp_core.image import faces_to_tensor

    from .losses import grey_for_identity
    from .model import load_identity

    net = load_identity(str(_weights_file("identity", "the ArcFace weights", weights, download))).to(device)

    @torch.inference_mode()
    def angle(out: np.ndarray, gt: np.ndarray) -> float:
        pair = faces_to_tensor(np.stack([out, gt]), device=device, dtype=torch.float32)
        a, b = net(grey_for_identity(pair)).float()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=0).clamp(-1, 1)
        return math.degrees(math.acos(float(cos)))

    return Measure("identity", "identity (deg)", False, angle)


#: torchvision's AlexNet ``features`` index → the LPIPS slice that holds it
_LPIPS_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def _lpips(device: torch.device, backbone: str, download: bool) -> Measure:
    import warnings

    from gfp_core.image import faces_to_tensor
    from gfp_core.weights import read_state_dict

    try:
        import lpips
    except ImportError as exc:
        raise MeasureUnavailable("lpips: the 'lpips' package is not installed (requirements-train.txt)") from exc
    state = read_state_dict(_weights_file("lpips", "the AlexNet weights", backbone, download))
    with warnings.catch_warnings():  # lpips asks torchvision with its old 'pretrained' argument
        warnings.simplefilter("ignore", UserWarning)
        net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
    backbone_state = {}
    for key, tensor in state.items():
        parts = key.split(".")  # features.<index>.<weight|bias>
        if parts[0] == "features" and int(parts[1]) in _LPIPS_SLICES:
            backbone_state[f"slice{_LPIPS_SLICES[int(parts[1])]}.{parts[1]}.{parts[2]}"] = tensor
    try:
        net.net.load_state_dict(backbone_state, strict=True)
    except RuntimeError as exc:
        raise GFPError(f"{backbone} is not torchvision's AlexNet: {str(exc).splitlines()[0]}") from None
    net = net.eval().to(device)

    @torch.inference_mode()
    def distance(out: np.ndarray, gt: np.ndarray) -> float:
        pair = faces_to_tensor(np.stack([out, gt]), device=device, dtype=torch.float32)
        return float(net(pair[:1], pair[1:]))

    return Measure("lpips", "LPIPS", False, distance)


def _niqe(params: str, download: bool) -> Measure:
    from .niqe import luma, niqe

    path = _weights_file("niqe", "its pristine model", params, download)
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, cov, window = data["mu_pris_param"], data["cov_pris_param"], data["gaussian_window"]
    except (KeyError, ValueError, OSError) as exc:
        raise GFPError(f"{params} is not NIQE's pristine model ({exc})") from exc
    return Measure("niqe", "NIQE", False, lambda out, gt: niqe(luma(out), mu, cov, window))


#: every measure, in the order of the table
MEASURES = ("psnr", "ssim", "lpips", "niqe", "lmd", "identity")
#: the measures that need no ground truth (the only ones a wild test set gets)
NO_REFERENCE = frozenset({"niqe"})


def build_measures(names: tuple[str, ...] = MEASURES, *, device: torch.device | None = None,
                   identity_weights: str = "arcface_resnet18", lpips_weights: str = "alexnet_imagenet",
                   niqe_params: str = "niqe_pris_params", download: bool = True, ground_truth: bool = True
                   ) -> tuple[list[Measure], dict[str, str]]:
    """The measures that can run here, and for the others why not (name → reason). ``download``:
    fetch missing networks (else only those already on this machine run). Without a ``ground_truth``
    only the no-reference measures are built (the others' networks are not even loaded)."""
    device = device or torch.device("cpu")
    builders = {"psnr": _psnr, "ssim": _ssim, "lpips": lambda: _lpips(device, lpips_weights, download),
                "niqe": lambda: _niqe(niqe_params, download), "lmd": lambda: _lmd(device),
                "identity": lambda: _identity(device, identity_weights, download)}
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise GFPError(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    ready, missing = [], {}
    for name in names:
        if not ground_truth and name not in NO_REFERENCE:
            missing[name] = "needs a ground truth; this test set is wild"
            continue
        try:
            ready.append(builders[name]())
        except MeasureUnavailable as exc:
            missing[name] = str(exc)
    return ready, missing
