"""Steadier restored faces on video: each restored crop blended with the same face's steadied crop of
the frame before, while the face stands still.

Smoothing the alignment (:mod:`gfp_core.face.track`) stops the crop from shaking, but a restoring
model still answers every frame's fresh noise and compression with different details, so a still
face shimmers; measured, that is most of what flickers (bench/bench_video_flicker.py). While a face
does not move, a running average of its restored crops removes it:
``S_t = (1 - w_t)·R_t + w_t·S'_{t-1}``, where ``S'_{t-1}`` is the previous steadied crop carried
into this frame's crop (through the frame: the two alignments differ by the smoothed alignment's
remaining shake, a fraction of a pixel; blended without being carried over, a small still face
measured twice the flicker). The previous crop's weight ``w_t`` is ``strength × MAX_WEIGHT`` for a face
whose landmarks did not move since the frame before, and falls linearly to 0 as they move by
``still`` of the crop's width (:data:`STILL`: 2 px of a 64-px crop, 16 px of a 512-px one): a moving face, a sudden move or a new track (a gap, the first frame) gets
its own crop alone, so nothing trails behind it (no ghost). The 5 landmarks do not see a blink or
an expression, so the weight also falls, pixel by pixel, where this frame's restored crop differs
from the carried one by more than a shimmer (the local mean difference, in ``change_levels`` 8-bit
levels: :data:`CHANGE_LEVELS`): closing eyes or an opening mouth show in their own frame, while the
model's few-level answers to noise are still averaged away.

Pure numpy (and one OpenCV warp) on the engine's arrays, per track in frame order, after restoring
and before the masks; a clip run in chunks hands each chunk's last crops to the next::

    restored = steady_tracks(restored, faces.flat_affines, landmarks, faces.frame_index, track_ids, strength,
                             previous=last)
    last = last_of_tracks(restored, faces.flat_affines, landmarks, faces.frame_index, track_ids)
"""
from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np

from ..options import STEADY

#: the strength measured in bench/bench_video_flicker.py (0 = off: every crop as restored)
DEFAULT_STRENGTH = 1.0
#: the previous crop's weight at strength 1: a running average over about 1 / (1 - w) = 5 frames
#: (0.9 lowered a still face's flicker further, 4.3× → 5.2× less than each frame alone, but would
#: let an expression linger twice as long, and the 5 landmarks do not see a blink)
MAX_WEIGHT = 0.8
#: landmark movement between two frames, in crop widths, at which the blend is off: 2 px of a 64-px
#: crop (16 px of a 512-px one). The crop before is carried into this one's geometry and the change
#: gate keeps what really changes, so a face that moves a little may still be blended: measured on
#: 64-px crops, 2 px against 0.5 px lowered a small still face's flicker from 2.4x to 3.5x less than
#: each frame alone, a jump's from 3.1x to 3.8x (still no ghost), and a large moving face came out
#: nearer the clean clip (correlation 0.860 against 0.856) for 4 % more frame-to-frame change
STILL = 2 / 64
#: 8-bit levels of local change (the difference averaged over the colours and blurred over 1/40 of
#: the crop) at which a pixel's blend has fallen to 1/e (Gaussian in the change). A restorer's
#: shimmer, mostly averaged away by the blur, keeps nearly the whole blend (0.97 at 3 levels); an
#: eye closing changes by tens of levels and shows at once (under 0.02 of the blend at 32)
CHANGE_LEVELS = 16.0


class Last(NamedTuple):
    """A track's last steadied crop and the affine and landmarks it was made with: where a clip run
    in chunks picks up (``previous`` of :func:`steady_crops` / :func:`steady_tracks`)."""

    crop: np.ndarray       # S×S×3
    affine: np.ndarray     # 2×3, frame → crop
    landmarks: np.ndarray  # 5×2, frame pixels


def _change_gate(now: np.ndarray, before: np.ndarray, full_scale: float, change_levels: float) -> np.ndarray:
    """``[S, S, 1]`` in (0, 1]: how much of the blend each pixel keeps, from how much it changed."""
    import cv2

    # blurred before its size is taken: a change that holds over a region (an eyelid) stays, while the
    # shimmer, whose sign varies from pixel to pixel, averages away
    diff = cv2.GaussianBlur((now - before).mean(axis=2), (0, 0), max(now.shape[0] / 40, 1.0))
    return np.exp(-np.square(diff * np.float32(255.0 / (full_scale * change_levels))))[..., None]


def _check(strength: float, still: float) -> None:
    from ..errors import InvalidOptionError

    STEADY.check(strength)
    if isinstance(still, bool) or not isinstance(still, (int, float, np.number)) or not still > 0:
        raise InvalidOptionError(f"still must be a positive fraction of the crop's width, got {still!r}",
                                 setting="still", value=still, allowed=(0, None))


def face_motion(affines: np.ndarray, landmarks: np.ndarray, previous: Last | None = None) -> np.ndarray:
    """``[T]``: how far each frame's landmarks moved since the frame before, in pixels of the frame
    before's crop (RMS over the points); ``inf`` for the first frame unless ``previous`` is given."""
    a = np.asarray(affines, np.float64).reshape(-1, 2, 3)
    pts = np.asarray(landmarks, np.float64).reshape(len(a), -1, 2)
    if previous is not None:
        a = np.concatenate([np.asarray(previous.affine, np.float64)[None], a])
        pts = np.concatenate([np.asarray(previous.landmarks, np.float64).reshape(1, -1, 2), pts])
    moved = np.einsum("nij,nkj->nki", a[:-1, :, :2], pts[1:] - pts[:-1])  # the linear part: a move, not a place
    out = np.sqrt(np.mean(np.sum(moved * moved, axis=-1), axis=-1))
    return out if previous is not None else np.concatenate([[np.inf], out])


def steady_weights(motion: np.ndarray, strength: float = DEFAULT_STRENGTH, still: float = STILL) -> np.ndarray:
    """The previous crop's weight for faces that moved ``motion`` crop widths (``inf``: nothing before)."""
    _check(strength, still)
    motion = np.asarray(motion, np.float64)
    known = np.isfinite(motion)
    gate = np.zeros_like(motion)
    gate[known] = np.clip(1.0 - motion[known] / still, 0.0, 1.0)
    return strength * MAX_WEIGHT * gate


def _crop_to_crop(now: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The 2×3 map from the crop made with affine ``before`` to the crop made with ``now``."""
    import cv2

    back = np.vstack([cv2.invertAffineTransform(np.asarray(before, np.float64)), [0.0, 0.0, 1.0]])
    return (np.vstack([np.asarray(now, np.float64), [0.0, 0.0, 1.0]]) @ back)[:2]


def _carried(crop: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``crop`` (float32) resampled by the crop-to-crop map ``m``; as it is when ``m`` moves no
    pixel by 1/100 (resampling blurs a little, and the running average would gather it)."""
    import cv2

    s = crop.shape[0]
    corners = np.array([[0.0, 0.0, 1.0], [s, 0.0, 1.0], [0.0, s, 1.0], [s, s, 1.0]])
    if np.abs(corners @ m.T - corners[:, :2]).max() < 0.01:
        return crop
    return cv2.warpAffine(crop, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def steady_crops(restored: np.ndarray, affines: np.ndarray, landmarks: np.ndarray,
                 strength: float = DEFAULT_STRENGTH, *, still: float = STILL,
                 change_levels: float = CHANGE_LEVELS, full_scale: float = 255.0,
                 previous: Last | None = None) -> np.ndarray:
    """One track's restored crops (``[T, S, S, 3]``, consecutive frames in order) steadied; same
    shape and dtype (uint8 is rounded once, at the end: the running average is kept in float).
    ``affines`` (``[T, 2, 3]``) and ``landmarks`` (``[T, 5, 2]``, frame pixels) are those the crops
    were aligned with. ``full_scale``: the crops' white (255 for 8-bit levels, 1.0 for floats in
    [0, 1]). ``previous``: the track's last crop of the chunk before (a clip run in chunks)."""
    restored = np.asarray(restored)
    weights = steady_weights(face_motion(affines, landmarks, previous) / restored.shape[1], strength, still)
    if not weights.any():
        return restored.copy()
    a = np.asarray(affines, np.float64)
    out = np.empty_like(restored)
    last = None if previous is None else np.asarray(previous.crop, np.float32)
    before = None if previous is None else np.asarray(previous.affine, np.float64)
    for t, (crop, w) in enumerate(zip(restored, weights)):
        now = crop.astype(np.float32)
        if w > 0:  # w > 0 only with a frame before; float32 throughout, as a chunk's last crop is kept
            carried = _carried(last, _crop_to_crop(a[t], before))
            keep = float(w) * _change_gate(now, carried, full_scale, change_levels)
            now = now + keep * (carried - now)
        last, before = now, a[t]
        out[t] = np.clip(np.rint(now), 0, 255) if out.dtype == np.uint8 else now
    return out


def steady_tracks(restored: np.ndarray, affines: np.ndarray, landmarks: np.ndarray, frame_index: np.ndarray,
                  track_ids: np.ndarray, strength: float = DEFAULT_STRENGTH, *, still: float = STILL,
                  change_levels: float = CHANGE_LEVELS, full_scale: float = 255.0,
                  previous: Mapping[int, Last] | None = None) -> np.ndarray:
    """:func:`steady_crops` over a flat batch of faces, one row per face as the engine keeps them
    (``frame_index``: each face's frame; ``track_ids``: its track). Each track's faces are steadied
    in frame order; a track that misses a frame starts afresh after the gap. ``previous``: per track
    id, its last crop in the chunk before (used when the track's first face here is in frame 0)."""
    restored = np.asarray(restored)
    _check(strength, still)
    if strength == 0 or not len(restored):
        return restored.copy()
    frame_index, track_ids = np.asarray(frame_index), np.asarray(track_ids)
    affines, landmarks = np.asarray(affines), np.asarray(landmarks)
    out = restored.copy()
    for track in np.unique(track_ids):
        rows = np.flatnonzero(track_ids == track)
        rows = rows[np.argsort(frame_index[rows], kind="stable")]
        for run in np.split(rows, np.flatnonzero(np.diff(frame_index[rows]) != 1) + 1):  # consecutive frames
            before = previous.get(int(track)) if previous and frame_index[run[0]] == 0 else None
            out[run] = steady_crops(restored[run], affines[run], landmarks[run], strength, still=still,
                                    change_levels=change_levels, full_scale=full_scale, previous=before)
    return out


def last_of_tracks(steadied: np.ndarray, affines: np.ndarray, landmarks: np.ndarray, frame_index: np.ndarray,
                   track_ids: np.ndarray, last_frame: int | None = None) -> dict[int, Last]:
    """What the next chunk of a clip continues from (``previous`` of :func:`steady_tracks`): per
    track with a face in the batch's last frame (``last_frame``; None: the last with a face), that
    face's steadied crop, affine and landmarks. A track missing there starts afresh after it."""
    frame_index, track_ids = np.asarray(frame_index), np.asarray(track_ids)
    if not len(frame_index):
        return {}
    rows = np.flatnonzero(frame_index == (frame_index.max() if last_frame is None else last_frame))
    return {int(track_ids[r]): Last(np.asarray(steadied[r]), np.asarray(affines[r]), np.asarray(landmarks[r]))
            for r in rows}


__all__ = ["CHANGE_LEVELS", "DEFAULT_STRENGTH", "Last", "MAX_WEIGHT", "STILL", "face_motion", "last_of_tracks", "steady_crops",
           "steady_tracks", "steady_weights"]
