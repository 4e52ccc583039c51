"""Output flicker on video: how much a clip's face region changes from frame to frame that the face's
own motion does not explain, and whether the pasted face follows a sudden move.

Measured against the truth of a synthetic clip (``tests/clips.py``): the face region is the face's
true box (found once on the clean photo, carried into every frame by the clip's transform), so it
does not move with the crop; a frame is compared with the previous frame moved onto it by the true
motion, so a moving face's real motion is not counted as flicker. Imported by tests and benchmarks::

    regions = face_regions(clip, photo_box)
    ratio = flicker(result_frames, clip, regions) / flicker(clip.frames, clip, regions)
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clips import Clip


def _chain(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The 2×3 map ``a`` after ``b``."""
    row = [[0.0, 0.0, 1.0]]
    return (np.vstack([a, row]) @ np.vstack([b, row]))[:2]


def _inverse(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def face_regions(clip: Clip, box: np.ndarray, shrink: float = 0.0) -> np.ndarray:
    """``[N, H, W]`` bool: the photo's face box ``(x0, y0, x1, y1)`` carried into every frame (a
    turned box where the face turns), less ``shrink`` of its size on each side."""
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    dx, dy = shrink * (x1 - x0), shrink * (y1 - y0)
    corners = np.array([[x0 + dx, y0 + dy], [x1 - dx, y0 + dy], [x1 - dx, y1 - dy], [x0 + dx, y1 - dy]])
    h, w = clip.frames.shape[1:3]
    out = np.zeros((len(clip), h, w), np.uint8)
    for mask, pts in zip(out, clip.truth(corners)):
        # pixel centres inside the polygon, in 1/16 px fixed point
        cv2.fillPoly(mask, [np.round((pts - 0.5) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


def clean_frames(clip: Clip) -> np.ndarray:
    """The clip as it would be without noise and compression: ``[N, H, W, 3]`` uint8."""
    h, w = clip.frames.shape[1:3]
    return np.stack([cv2.warpAffine(clip.photo, m, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT101) for m in clip.transforms])


def motion_between(clip: Clip, t: int) -> np.ndarray:
    """The 2×3 map from frame ``t - 1`` to frame ``t`` (where the face's points go)."""
    return _chain(clip.transforms[t], _inverse(clip.transforms[t - 1]))


def frame_differences(frames: np.ndarray, clip: Clip, regions: np.ndarray) -> np.ndarray:
    """``[N - 1]``: mean absolute difference (8-bit levels, all channels) between frame ``t`` and frame
    ``t - 1`` moved onto it by the face's true motion, inside frame ``t``'s face region."""
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    out = np.empty(len(frames) - 1)
    for t in range(1, len(frames)):
        m = motion_between(clip, t)
        before = frames[t - 1].astype(np.float32)
        if not np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9):  # still: no resampling at all
            before = cv2.warpAffine(before, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        diff = np.abs(frames[t].astype(np.float32) - before)
        out[t - 1] = diff[regions[t]].mean()
    return out


def flicker(frames: np.ndarray, clip: Clip, regions: np.ndarray, around_jump: int = 3) -> float:
    """Mean of :func:`frame_differences`, leaving out the pairs within ``around_jump`` frames of a
    jump (that is following, measured by :func:`follow`)."""
    diffs = frame_differences(frames, clip, regions)
    keep = np.ones(len(diffs), bool)
    if clip.jump_at is not None:
        pair_end = np.arange(1, len(clip))  # pair t-1 → t is counted at t
        keep = np.abs(pair_end - clip.jump_at) > around_jump
    return float(diffs[keep].mean())


def correlation(frames: np.ndarray, reference: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """``[N]``: normalised cross-correlation of each frame with the reference frame inside its region."""
    out = np.empty(len(frames))
    for t, (a, b, r) in enumerate(zip(frames, reference, regions)):
        x = a[r].astype(np.float64).ravel()
        y = b[r].astype(np.float64).ravel()
        x, y = x - x.mean(), y - y.mean()
        out[t] = float(x @ y / np.sqrt((x @ x) * (y @ y) + 1e-12))
    return out


def face_offsets(frames: np.ndarray, clip: Clip, regions: np.ndarray, search: int = 24) -> np.ndarray:
    """``[N]``: how far (pixels, to the right) each frame's face is from its true place: the
    horizontal shift of the frame that best correlates with the clean face inside the region, found
    among whole pixels up to ``search`` and refined to a fraction of a pixel (a parabola through the
    best three)."""
    clean = clean_frames(clip)
    shifts = np.arange(-search, search + 1)
    out = np.empty(len(frames))
    for t, (frame, ref, region) in enumerate(zip(np.asarray(frames), clean, regions)):
        ys, xs = np.nonzero(region)
        keep = (xs + shifts[0] >= 0) & (xs + shifts[-1] < frame.shape[1])
        ys, xs = ys[keep], xs[keep]
        y = ref[ys, xs].astype(np.float64).ravel()
        y = (y - y.mean()) / (np.linalg.norm(y - y.mean()) + 1e-12)
        scores = []
        for dx in shifts:
            x = frame[ys, xs + dx].astype(np.float64).ravel()
            x = x - x.mean()
            scores.append(float(x @ y / (np.linalg.norm(x) + 1e-12)))
        i = int(np.argmax(scores))
        frac = 0.0
        if 0 < i < len(shifts) - 1:
            a, b, c = scores[i - 1], scores[i], scores[i + 1]
            frac = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c < 0 else 0.0
        out[t] = shifts[i] + frac
    return out


@dataclass(frozen=True)
class Follow:
    """How the output followed the jump of a 'jump' clip. ``frames``: frames from the jump until the
    face is within ``near`` pixels of its true place (:func:`face_offsets`) and stays there; ``early``:
    frames before the jump already farther off; ``worst_px``: the largest offset; ``offsets``: from 3
    frames before the jump to 5 after. ``ghost``: the largest drop, near the jump, of the correlation
    with the clean face at its true place below its median away from the jump, in units of that
    median's distance to 1 (a trail of the old place blended in lowers it where the offset cannot
    see it)."""

    frames: int
    early: int
    worst_px: float
    offsets: tuple[float, ...]
    ghost: float


def follow(frames: np.ndarray, clip: Clip, regions: np.ndarray, near: float = 1.0, away: int = 6) -> Follow:
    """Whether the restored face follows the sudden move of a 'jump' clip (see :class:`Follow`)."""
    if clip.jump_at is None:
        raise ValueError("only a 'jump' clip has a jump to follow")
    k = clip.jump_at
    offsets = face_offsets(frames, clip, regions)
    off = np.abs(offsets) > near
    late = np.flatnonzero(off[k:])
    corr = correlation(frames, clean_frames(clip), regions)
    t = np.arange(len(clip))
    usual = float(np.median(corr[np.abs(t - k) >= away]))
    ghost = float(max(0.0, usual - corr[np.abs(t - k) < away].min()) / max(1e-6, 1.0 - usual))
    return Follow(frames=0 if not len(late) else int(late[-1]) + 1, early=int(off[:k].sum()),
                  worst_px=float(np.abs(offsets).max()),
                  offsets=tuple(float(o) for o in offsets[max(0, k - 3):k + 6]), ghost=ghost)


def blur_restorer(size: int = 64, sigma: float = 1.0):
    """A cheap restoring model for the engine: a ``torch.nn.Module`` with GFPGAN's calling convention
    (``out_size``; ``model(x, return_rgb=False, …) → (image, [])`` on ``[-1, 1]`` NCHW) whose
    restoration is a fixed Gaussian filter of the aligned crop. Like a trained restorer it removes
    most of each frame's noise and answers the same crop with the same face, so what still flickers
    in its output comes from the alignment and the paste; unlike one, it adds no detail of its own."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    radius = int(np.ceil(3 * sigma))
    g = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = np.outer(g, g) / np.outer(g, g).sum()

    class GaussianRestorer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.out_size = size
            weight = torch.tensor(kernel, dtype=torch.float32).expand(3, 1, *kernel.shape).clone()
            self.weight = nn.Parameter(weight, requires_grad=False)

        def forward(self, x, return_rgb: bool = False, randomize_noise: bool = False, fidelity: float = 1.0,
                    **_: object):
            padded = F.pad(x, (radius,) * 4, mode="reflect")
            return F.conv2d(padded, self.weight, groups=3), []

    return GaussianRestorer().eval()
