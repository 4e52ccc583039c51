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
* ``fid``: a measure of the whole set (:class:`SetMeasure`), not of each face: the Fréchet distance
  between the Inception features of the restored faces and of the ground truths (or of a statistics
  file such as pytorch-fid's ``--save-stats`` output), with pytorch-fid's network (TensorFlow's FID
  Inception, weights through the registry as ``inception_fid``).
"""
from __future__ import annotations

import math
import threading
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
    min_size: int = 0  # faces smaller than this (pixels a side) cannot be measured

    @property
    def needs_gt(self) -> bool:
        return self.name not in NO_REFERENCE


@dataclass
class SetMeasure:
    """A measure of a set of restored faces as a whole (FID): ``compute(restored, truths)``."""
    name: str
    label: str
    higher_is_better: bool
    compute: Callable[[np.ndarray, np.ndarray | None], float]
    needs_gt: bool = True
    min_size: int = 0


def _psnr() -> Measure:
    from .metrics import psnr

    return Measure("psnr", "PSNR (dB)", True, lambda out, gt: psnr(out, gt))


def _ssim() -> Measure:
    from .metrics import ssim

    return Measure("ssim", "SSIM", True, lambda out, gt: ssim(out, gt))


#: LMD looks for the landmarks of smaller faces on a copy resized to this many pixels a side
LMD_DETECT_SIZE = 256
#: the face's landmarks are wanted, not whether it is one: a low bar for the detector (default 0.97)
LMD_SCORE = 0.5


def _lmd(device: torch.device) -> Measure:
    import cv2

    from gfp_core.face.detection import detect_faces, load_detector

    detector = load_detector("embedded", device=device)

    def landmarks(img: np.ndarray) -> np.ndarray | None:
        # the detector misses faces that fill a small crop (64 px): look at them at 256 px at least
        scale = max(1.0, LMD_DETECT_SIZE / min(img.shape[:2]))
        if scale > 1:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = detect_faces(detector, img, score_threshold=LMD_SCORE)  # an aligned crop holds a face: want its points
        if not faces:
            return None
        centre = np.array(img.shape[1::-1]) / 2  # the aligned face: the one nearest the centre
        return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - centre))).landmarks / scale

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
    from .niqe import BLOCK, luma, niqe

    path = _weights_file("niqe", "its pristine model", params, download)
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, cov, window = data["mu_pris_param"], data["cov_pris_param"], data["gaussian_window"]
    except (KeyError, ValueError, OSError) as exc:
        raise GFPError(f"{params} is not NIQE's pristine model ({exc})") from exc
    return Measure("niqe", "NIQE", False, lambda out, gt: niqe(luma(out), mu, cov, window), min_size=BLOCK)


def frechet_distance(features: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
    """FID of ``features`` (N × D) against the Gaussian (``mu``, ``sigma``):
    ‖μ₁ − μ‖² + Tr Σ₁ + Tr Σ − 2 Tr (Σ₁Σ)^½, as pytorch-fid and basicsr define it.

    They take the square root of Σ₁Σ with ``scipy.linalg.sqrtm``, which for fewer faces than features
    (Σ₁ singular) returns complex noise (basicsr raises, pytorch-fid drops the imaginary part). Here
    Tr (Σ₁Σ)^½ is the sum of the square roots of the eigenvalues of X Σ Xᵀ (Σ₁ = XᵀX; same non-zero
    eigenvalues), a symmetric positive semi-definite matrix: exact for any number of faces."""
    n, d = features.shape
    mu1 = features.mean(0)
    x = (features - mu1) / math.sqrt(n - 1)
    if n <= d:
        inner = x @ sigma @ x.T
    else:  # as many faces as features or more: the D × D form Σ₁^½ Σ Σ₁^½ is the smaller one
        w, v = np.linalg.eigh(x.T @ x)
        root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        inner = root @ sigma @ root
    trace_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)).sum())
    diff = mu1 - mu
    return float(diff @ diff + (x * x).sum() + np.trace(sigma) - 2 * trace_sqrt)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


def load_fid_inception(weights: str | Path, device: torch.device) -> torch.nn.Module:
    """pytorch-fid's ``InceptionV3`` (final pool, 2048 features) with the weights of ``weights``.

    pytorch-fid fetches its weights itself with full unpickling; it is handed the registry's file,
    read safely, instead."""
    import pytorch_fid.inception as fid_inception

    from gfp_core.weights import read_state_dict

    state = read_state_dict(weights)
    with _FID_BUILD_LOCK:
        fetch = fid_inception.load_state_dict_from_url
        fid_inception.load_state_dict_from_url = lambda *args, **kwargs: state
        try:
            net = fid_inception.InceptionV3([fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
        except RuntimeError as exc:
            raise GFPError(f"{Path(weights).name} is not the FID Inception: {str(exc).splitlines()[0]}") from None
        finally:
            fid_inception.load_state_dict_from_url = fetch
    return net.eval().to(device)


_FID_BUILD_LOCK = threading.Lock()  # pytorch-fid's fetch is swapped for the registry's file while building


def _fid(device: torch.device, weights: str, download: bool, stats: str | None) -> SetMeasure:
    import importlib.util

    if importlib.util.find_spec("pytorch_fid") is None:
        raise MeasureUnavailable("fid: the 'pytorch-fid' package is not installed (requirements-train.txt)")
    reference = _read_fid_stats(stats) if stats else None  # a bad file is said before the network loads
    net = load_fid_inception(_weights_file("fid", "the FID Inception weights", weights, download), device)

    @torch.inference_mode()
    def features(faces: np.ndarray, batch: int = 16) -> np.ndarray:
        out = []
        for start in range(0, len(faces), batch):
            x = torch.from_numpy(np.ascontiguousarray(faces[start:start + batch])).to(device)
            x = x.permute(0, 3, 1, 2).float() / 255  # pytorch-fid takes [0, 1] and resizes to 299 itself
            out.append(net(x)[0].flatten(1).double().cpu().numpy())
        return np.concatenate(out)

    truth_stats: dict[int, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]] = {}

    def fid(restored: np.ndarray, truths: np.ndarray | None) -> float:
        if len(restored) < 2:
            return float("nan")  # a covariance needs two faces
        if reference is not None:
            ref = reference
        else:
            cached = truth_stats.get(id(truths))
            if cached is None or cached[0] is not truths:  # the ground truths' features, once per set
                cached = truth_stats[id(truths)] = (truths, statistics(features(truths)))
            ref = cached[1]
        return frechet_distance(features(restored), *ref)

    return SetMeasure("fid", "FID", False, fid, needs_gt=reference is None)


def _read_fid_stats(path: str) -> tuple[np.ndarray, np.ndarray]:
    """A statistics file with ``mu`` and ``sigma`` (pytorch-fid's ``--save-stats`` format)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    except (KeyError, ValueError, OSError) as exc:
        raise GFPError(f"{path} is not an FID statistics file with 'mu' and 'sigma' ({exc})") from exc
    if mu.shape != (2048,) or sigma.shape != (2048, 2048):
        raise GFPError(f"{path}: expected the 2048 Inception features' mu and sigma, got {mu.shape} and {sigma.shape}")
    return mu, sigma


#: every measure, in the order of the table
MEASURES = ("psnr", "ssim", "lpips", "fid", "niqe", "lmd", "identity")
#: the measures that need no ground truth (the only ones a wild test set gets)
NO_REFERENCE = frozenset({"niqe"})


def build_measures(names: tuple[str, ...] = MEASURES, *, device: torch.device | None = None,
                   identity_weights: str = "arcface_resnet18", lpips_weights: str = "alexnet_imagenet",
                   niqe_params: str = "niqe_pris_params", fid_weights: str = "inception_fid",
                   fid_stats: str | None = None, download: bool = True, ground_truth: bool = True,
                   face_size: int | None = None) -> tuple[list[Measure | SetMeasure], dict[str, str]]:
    """The measures that can run here, and for the others why not (name → reason). ``download``:
    fetch missing networks (else only those already on this machine run). Without a ``ground_truth``
    only the no-reference measures are built (the others' networks are not even loaded); FID is one of
    them when ``fid_stats`` (a reference set's statistics) is given. ``face_size``: the faces' side in
    pixels; a measure that needs larger faces is left out."""
    device = device or torch.device("cpu")
    builders = {"psnr": _psnr, "ssim": _ssim, "lpips": lambda: _lpips(device, lpips_weights, download),
                "fid": lambda: _fid(device, fid_weights, download, fid_stats),
                "niqe": lambda: _niqe(niqe_params, download), "lmd": lambda: _lmd(device),
                "identity": lambda: _identity(device, identity_weights, download)}
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise GFPError(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    no_reference = NO_REFERENCE | ({"fid"} if fid_stats else set())
    ready, missing = [], {}
    for name in names:
        if not ground_truth and name not in no_reference:
            missing[name] = "needs a ground truth; this test set is wild" + (
                " (or, for FID, a reference set's statistics: --fid-stats)" if name == "fid" else "")
            continue
        try:
            measure = builders[name]()
        except MeasureUnavailable as exc:
            missing[name] = str(exc)
            continue
        if face_size is not None and measure.min_size > face_size:
            missing[name] = f"{name}: needs faces of {measure.min_size} px or more; these are {face_size} px"
        else:
            ready.append(measure)
    return ready, missing
