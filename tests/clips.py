"""Small synthetic video clips of a real face, with the truth of where the face is in every frame.

The face is the astronaut of ``skimage.data.astronaut()`` (public domain). Each frame is the photo
placed on the frame by a known similarity (pan, zoom, a little rotation), then given its own sensor
noise and JPEG compression, as a camera and a video codec would: the face moves smoothly (or stands
still, or jumps once) while the detector sees slightly different pixels every frame.

Imported by tests and by the benchmarks (both put tests/ on ``sys.path``)::

    clip = make_clip("still", frames=24)
    truth = clip.truth(reference_landmarks)   # [N, 5, 2]: where those photo points are in each frame
    jitter = alignment_jitter(affines, truth) # crop pixels
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import skimage.data

Motion = Literal["moving", "fast", "still", "jump"]

#: frames per loop of a 'fast' clip: 0.8 s at 30 fps, about 3 face widths a second at its quickest
FAST_LOOP = 24

#: the astronaut's face centre in the photo (between the eyes and the mouth), pixels
FACE_CENTRE = (225.0, 122.0)


@dataclass(frozen=True)
class Clip:
    """``frames``: ``[N, H, W, 3]`` uint8 RGB; ``transforms``: ``[N, 2, 3]`` float64 similarities
    from the photo's pixel coordinates to each frame's; ``photo``: the clean source photo."""

    frames: np.ndarray
    transforms: np.ndarray
    photo: np.ndarray
    motion: str
    fps: float = 30.0
    jump_at: int | None = None  # the first frame after the jump ('jump' clips)

    def __len__(self) -> int:
        return len(self.frames)

    def truth(self, points: np.ndarray) -> np.ndarray:
        """``points`` (``[K, 2]``, photo coordinates) in every frame: ``[N, K, 2]``."""
        pts = np.asarray(points, np.float64)
        return np.einsum("nij,kj->nki", self.transforms[:, :, :2], pts) + self.transforms[:, None, :, 2]


def _similarity(scale: float, angle_deg: float, centre: tuple[float, float], to: tuple[float, float]) -> np.ndarray:
    """The similarity that puts photo point ``centre`` at frame point ``to``, scaled and rotated about it."""
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, (np.asarray(to) - rot @ np.asarray(centre))[:, None]])


def _placements(motion: Motion, n: int, jump_at: int, jump_px: float) -> list[tuple[float, float, float, float]]:
    """(dx, dy, scale, angle) of the face per frame, relative to the frame centre."""
    out = []
    for t in range(n):
        if motion in ("moving", "fast"):  # one slow loop (or one per FAST_LOOP frames): pan ±24/±12 px,
            phase = 2 * np.pi * t / (FAST_LOOP if motion == "fast" else max(n, 1))  # zoom ±12 %, rotation ±6°
            out.append((24 * np.sin(phase), 12 * np.sin(2 * phase), 1 + 0.12 * np.sin(phase + 1.0),
                        6 * np.sin(phase + 2.0)))
        elif motion == "still":
            out.append((0.0, 0.0, 1.0, 0.0))
        elif motion == "jump":
            out.append((-jump_px / 2 if t < jump_at else jump_px / 2, 0.0, 1.0, 0.0))
        else:
            raise ValueError(f"motion must be 'moving', 'fast', 'still' or 'jump', not {motion!r}")
    return out


def make_clip(motion: Motion = "moving", frames: int = 30, size: tuple[int, int] = (256, 256), *,
              scale: float = 1.0, noise: float = 4.0, jpeg_quality: int = 70, jump_at: int | None = None,
              jump_px: float = 40.0, fps: float = 30.0, seed: int = 0) -> Clip:
    """A clip of ``frames`` frames of ``size`` (height, width) showing the astronaut's face.

    ``motion``: 'moving' (smooth pan, zoom and rotation: one loop over the clip), 'fast' (the same loop
    every :data:`FAST_LOOP` frames), 'still', or 'jump' (still, then moved
    ``jump_px`` to the right at frame ``jump_at``, default the middle). ``scale``: the face's size
    relative to the photo (about 70 px wide at 1). Every frame gets its own Gaussian noise (``noise``,
    in 8-bit levels) and JPEG compression at ``jpeg_quality`` (0: none). Seeded: the same arguments
    give the same clip.
    """
    photo = skimage.data.astronaut()
    h, w = size
    jump_at = frames // 2 if jump_at is None else jump_at
    rng = np.random.default_rng(seed)
    frame_list, transforms = [], []
    for dx, dy, s, angle in _placements(motion, frames, jump_at, jump_px):
        m = _similarity(scale * s, angle, FACE_CENTRE, (w / 2 + dx, h / 2 + dy))
        # reflect the photo past its edges: no hard border for the detector to find
        frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if noise:
            frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
        if jpeg_quality:
            ok, data = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            frame = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
        frame_list.append(np.ascontiguousarray(frame))
        transforms.append(m)
    return Clip(np.stack(frame_list), np.stack(transforms), photo, motion, fps,
                jump_at if motion == "jump" else None)


# --- measurements ------------------------------------------------------------------------------

def crop_positions(affines: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Where the face's true points land in each frame's aligned crop: ``[N, K, 2]`` crop pixels.

    ``affines``: ``[N, 2, 3]`` image → crop (as :func:`gfp_core.face.align.estimate_alignment`
    gives); ``truth``: ``[N, K, 2]`` image points. A perfect alignment puts them at the same crop
    pixels in every frame; any movement there is the crop sliding, scaling or turning on the face.
    """
    a = np.asarray(affines, np.float64)
    return np.einsum("nij,nkj->nki", a[:, :, :2], np.asarray(truth, np.float64)) + a[:, None, :, 2]


def alignment_jitter(affines: np.ndarray, truth: np.ndarray) -> float:
    """RMS second difference (crop pixels) of :func:`crop_positions` over frames and points: how much
    the crop shakes from frame to frame, not counting smooth drift."""
    pos = crop_positions(affines, truth)
    if len(pos) < 3:
        return 0.0
    second = pos[2:] - 2 * pos[1:-1] + pos[:-2]
    return float(np.sqrt(np.mean(np.sum(second ** 2, axis=-1))))
