"""The synthetic degradation of GFPGAN training (paper §4.1, official FFHQDegradationDataset):

    x = JPEG_q( (y ⊛ k_σ)↓_r + n_δ )↑_r,  then colour jitter and, rarely, greyscale

on float32 RGB images in [0, 1]. Every random draw comes from the ``numpy.random.Generator`` (and,
for the torchvision colour jitter, the ``torch.Generator``) passed in, so a sample is reproducible
from its seed alone, whichever worker or process makes it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """A normalised bivariate Gaussian ``size``×``size`` kernel with covariance R(θ)·diag(σx², σy²)·R(θ)ᵀ."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([sigma_x ** 2, sigma_y ** 2]) @ rot.T
    half = size // 2
    ax = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    pts = np.stack([xx, yy], -1)  # [size, size, 2] as (x, y)
    inv = np.linalg.inv(cov)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", pts, inv, pts))
    return kernel / kernel.sum()


def random_blur_kernel(rng: np.random.Generator, size: int, kinds: Sequence[str], probs: Sequence[float],
                       sigma: Sequence[float]) -> np.ndarray:
    """Isotropic (σx = σy, θ = 0) or anisotropic (independent σx, σy; θ ∈ [-π, π]) Gaussian."""
    p = np.asarray(probs, dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    if kind == "iso":
        s = rng.uniform(sigma[0], sigma[1])
        return gaussian_kernel(size, s, s, 0.0)
    sx, sy = rng.uniform(sigma[0], sigma[1]), rng.uniform(sigma[0], sigma[1])
    return gaussian_kernel(size, sx, sy, rng.uniform(-math.pi, math.pi))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip of a float RGB image in [0, 1] (OpenCV's encoder, as the official pipeline)."""
    u8 = (np.clip(img, 0, 1) * 255.0).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


def grey(img: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def colour_jitter_pt(img: torch.Tensor, opts: Mapping[str, Any], gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter in a random order (torchvision), on ``[3, H, W]``."""
    from torchvision.transforms import functional as tvf

    adjust = {"brightness": tvf.adjust_brightness, "contrast": tvf.adjust_contrast,
              "saturation": tvf.adjust_saturation, "hue": tvf.adjust_hue}
    names = list(adjust)
    for i in torch.randperm(4, generator=gen).tolist():
        rng = opts.get(names[i])
        if rng is None:
            continue
        factor = float(torch.empty(()).uniform_(float(rng[0]), float(rng[1]), generator=gen))
        img = adjust[names[i]](img, factor)
    return img


def degrade(gt: np.ndarray, opts: Mapping[str, Any], rng: np.random.Generator,
            gen: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(degraded input, ground truth), float32 RGB ``H×W×3`` in [0, 1]; the ground truth turns grey
    with the input when ``gt_gray`` is set."""
    h, w = gt.shape[:2]
    kernel = random_blur_kernel(rng, opts["blur_kernel_size"], opts["kernel_list"], opts["kernel_prob"],
                                opts["blur_sigma"])
    lq = cv2.filter2D(gt, -1, kernel.astype(np.float32))
    scale = rng.uniform(*opts["downsample_range"])
    lq = cv2.resize(lq, (max(1, int(w // scale)), max(1, int(h // scale))), interpolation=cv2.INTER_LINEAR)
    if opts["noise_range"] is not None:
        sigma = rng.uniform(*opts["noise_range"]) / 255.0
        lq = np.clip(lq + rng.standard_normal(lq.shape).astype(np.float32) * sigma, 0, 1)
    if opts["jpeg_range"] is not None:
        lq = jpeg(lq, int(rng.uniform(*opts["jpeg_range"])))
    lq = cv2.resize(lq, (w, h), interpolation=cv2.INTER_LINEAR)
    if opts["color_jitter_prob"] is not None and rng.uniform() < opts["color_jitter_prob"]:
        shift = opts["color_jitter_shift"] / 255.0
        lq = np.clip(lq + rng.uniform(-shift, shift, 3).astype(np.float32), 0, 1)
    if opts["gray_prob"] and rng.uniform() < opts["gray_prob"]:
        lq = grey(lq)
        if opts["gt_gray"]:
            gt = grey(gt)
    if opts["color_jitter_pt_prob"] is not None and rng.uniform() < opts["color_jitter_pt_prob"]:
        t = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1)))
        lq = colour_jitter_pt(t, opts, gen).numpy().transpose(1, 2, 0)
    lq = np.clip(np.round(lq * 255.0), 0, 255) / 255.0  # the input is an 8-bit image
    return lq.astype(np.float32), gt.astype(np.float32)
