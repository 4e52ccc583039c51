"""NIQE (Mittal, Soundararajan and Bovik 2013, "Making a 'completely blind' image quality analyzer"):
how far an image's natural-scene statistics are from those of pristine photos; lower is better.

The luma (MATLAB's BT.601 Y, rounded to integers) is normalised to MSCN coefficients (local mean and
contrast removed with a 7×7 Gaussian window); every 96×96 block, at full and half size, gives 36
features: a generalised Gaussian fit of the coefficients and asymmetric fits of their products with
four neighbours. A multivariate Gaussian fitted to the blocks' features is compared with the pristine
model (``mu_pris_param``, ``cov_pris_param``; the ``niqe_pris_params`` file of the registry, as
published with the MATLAB release). Half size is MATLAB's bicubic ``imresize`` with antialiasing,
as the reference code uses.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import convolve
from scipy.special import gamma

BLOCK = 96
_SHAPES = np.arange(0.2, 10.001, 0.001)  # the shape parameters the moment-matching searches
_RATIO = gamma(2 / _SHAPES) ** 2 / (gamma(1 / _SHAPES) * gamma(3 / _SHAPES))


def luma(rgb: np.ndarray) -> np.ndarray:
    """8-bit RGB → MATLAB's ``rgb2ycbcr`` Y in [16, 235], rounded as the reference code does."""
    y = rgb.astype(np.float32) / 255.0 @ np.array([65.481, 128.553, 24.966], np.float32) + 16.0
    return np.round(y.astype(np.float32) / 255.0 * 255.0)


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
            + (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """The ``[n_out, n_in]`` matrix of MATLAB's bicubic resize along one axis (antialiased when
    shrinking, mirrored edges)."""
    n_out = math.ceil(n_in * scale)
    width = 4 / scale if scale < 1 else 4
    centres = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input positions
    taps = np.floor(centres - width / 2)[:, None] + np.arange(math.ceil(width) + 2)[None]
    weights = scale * _cubic((centres[:, None] - taps) * scale) if scale < 1 else _cubic(centres[:, None] - taps)
    weights /= weights.sum(1, keepdims=True)
    index = taps.astype(int) - 1
    index = np.where(index < 0, -index - 1, index)  # mirror at the start …
    index = np.where(index >= n_in, 2 * n_in - index - 1, index)  # … and at the end
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), index.shape[1]), index.ravel()), weights.ravel())
    return matrix


def matlab_half(img: np.ndarray) -> np.ndarray:
    """``imresize(img, 0.5)`` (bicubic, antialiased) of a 2-D image in [0, 1]."""
    return (_resize_matrix(img.shape[0], 0.5) @ img.astype(np.float64) @ _resize_matrix(img.shape[1], 0.5).T)


def _asymmetric_fit(x: np.ndarray) -> tuple[float, float, float]:
    """Shape α and left / right scales of an asymmetric generalised Gaussian, by moment matching."""
    x = x.ravel()
    left, right = np.sqrt(np.mean(x[x < 0] ** 2)), np.sqrt(np.mean(x[x > 0] ** 2))
    g = left / right
    r = np.mean(np.abs(x)) ** 2 / np.mean(x ** 2)
    r_norm = r * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
    alpha = _SHAPES[np.argmin((_RATIO - r_norm) ** 2)]
    spread = np.sqrt(gamma(1 / alpha) / gamma(3 / alpha))
    return float(alpha), float(left * spread), float(right * spread)


def block_features(block: np.ndarray) -> list[float]:
    """18 features of one block of MSCN coefficients."""
    alpha, left, right = _asymmetric_fit(block)
    features = [alpha, (left + right) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # horizontal, vertical and both diagonal neighbours
        alpha, left, right = _asymmetric_fit(block * np.roll(block, shift, axis=(0, 1)))
        features += [alpha, (right - left) * gamma(2 / alpha) / gamma(1 / alpha), left, right]
    return features


def niqe(y: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, window: np.ndarray) -> float:
    """NIQE of a luma image in [0, 255] (see the module docstring)."""
    rows, cols = y.shape[0] // BLOCK, y.shape[1] // BLOCK
    if rows == 0 or cols == 0:
        raise ValueError(f"NIQE needs at least {BLOCK}×{BLOCK} pixels, got {y.shape[1]}×{y.shape[0]}")
    img = y[:rows * BLOCK, :cols * BLOCK].astype(np.float32)
    per_scale = []
    for scale in (1, 2):
        mu = convolve(img, window, mode="nearest")
        sigma = np.sqrt(np.abs(convolve(np.square(img), window, mode="nearest") - np.square(mu)))
        mscn = (img - mu) / (sigma + 1)
        size = BLOCK // scale
        per_scale.append(np.array([block_features(mscn[r * size:(r + 1) * size, c * size:(c + 1) * size])
                                   for c in range(cols) for r in range(rows)]))
        if scale == 1:
            img = (matlab_half(img / 255.0) * 255.0).astype(np.float32)
    features = np.concatenate(per_scale, axis=1)
    mu = np.nanmean(features, axis=0)
    cov = np.cov(features[~np.isnan(features).any(axis=1)], rowvar=False)
    gap = (np.asarray(mu_pris) - mu).ravel()
    return float(np.sqrt(gap @ np.linalg.pinv((cov_pris + cov) / 2) @ gap))
