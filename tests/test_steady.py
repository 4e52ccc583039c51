"""Steadier restored faces (gfp_core.face.steady): pure numpy on synthetic crops."""
from __future__ import annotations

import numpy as np
import pytest

from gfp_core.errors import InvalidOptionError
from gfp_core.face.steady import (MAX_WEIGHT, STILL, Last, face_motion, last_of_tracks, steady_crops,
                                  steady_tracks)

S = 32
LANDMARKS = np.array([[11.0, 13.0], [21.0, 13.0], [16.0, 18.0], [12.0, 24.0], [20.0, 24.0]])


def _face(size: int = S, waves: float = 6.0) -> np.ndarray:
    """A smooth 'face' crop with some structure, float in [40, 215]."""
    y, x = np.mgrid[:size, :size] / size
    base = 128 + 60 * np.sin(waves * x) * np.cos(waves * y)
    return np.repeat(base[..., None], 3, axis=2) + np.array([0.0, 10.0, -10.0])


def _still(frames: int = 40, noise: float = 6.0, seed: int = 0):
    """A face that stands still: the same crop with fresh noise every frame (a restorer's shimmer),
    the same alignment (scale 2: one frame pixel is two crop pixels) and landmarks."""
    rng = np.random.default_rng(seed)
    crops = np.clip(np.rint(_face() + rng.normal(0, noise, (frames, S, S, 3))), 0, 255).astype(np.uint8)
    affines = np.repeat(np.array([[[2.0, 0.0, -10.0], [0.0, 2.0, -6.0]]]), frames, axis=0)
    landmarks = np.repeat(((LANDMARKS + [10.0, 6.0]) / 2)[None], frames, axis=0)
    return crops, affines, landmarks


def _flicker(crops: np.ndarray) -> float:
    return float(np.abs(np.diff(crops.astype(np.float64), axis=0)).mean())


def test_strength_zero_gives_the_crops_back_as_they_are():
    crops, affines, landmarks = _still()
    out = steady_crops(crops, affines, landmarks, 0.0)
    assert out.dtype == crops.dtype and np.array_equal(out, crops) and out is not crops
    tracks = steady_tracks(crops, affines, landmarks, np.arange(len(crops)), np.zeros(len(crops), int), 0.0)
    assert np.array_equal(tracks, crops)


@pytest.mark.parametrize("strength, at_least", [(0.5, 1.6), (1.0, 3.0)])
def test_a_still_face_s_shimmer_drops_and_the_face_stays_the_same(strength, at_least):
    crops, affines, landmarks = _still()
    out = steady_crops(crops, affines, landmarks, strength)
    assert out.dtype == np.uint8 and out.shape == crops.shape
    assert np.array_equal(out[0], crops[0])  # nothing before the first frame
    ratio = _flicker(crops) / _flicker(out)
    assert ratio >= at_least, ratio
    # the average face is unchanged (no drift, no bias): within a level on average
    assert abs(out[5:].astype(float).mean() - crops[5:].astype(float).mean()) < 0.5
    # a running average with the previous crop's weight w lowers white noise's frame-to-frame
    # differences by sqrt(1 + w) / (1 - w) (less a little for the rounding to 8 bits)
    w = strength * MAX_WEIGHT
    assert ratio == pytest.approx(np.sqrt(1 + w) / (1 - w), rel=0.2)


def test_a_face_that_moved_is_not_blended_so_nothing_trails_behind():
    crops, affines, landmarks = _still(frames=12)
    jumped = crops.copy()
    jumped[6:] = np.roll(crops[6:], 5, axis=2)  # the face moved 5 crop pixels right at frame 6 ...
    moved = landmarks.copy()
    moved[6:, :, 0] += 2.5                      # ... its landmarks 2.5 frame pixels = 5 crop pixels
    out = steady_crops(jumped, affines, moved, 1.0)
    motion = face_motion(affines, moved)
    assert np.isinf(motion[0]) and motion[6] == pytest.approx(5.0) and np.allclose(motion[7:], 0)
    assert np.array_equal(out[6], jumped[6])  # the frame after the move is its own crop: no ghost
    # and the frames after it are blended only with crops of the face at its new place
    assert np.array_equal(out[6:], steady_crops(jumped[6:], affines[6:], moved[6:], 1.0))


def test_a_blink_shows_in_its_own_frame_though_the_landmarks_stand_still():
    """The landmarks do not see eyes close; the change itself does: where the restored crop differs
    from the carried one by far more than a shimmer, that frame's own crop shows."""
    crops, affines, landmarks = _still(frames=16)
    eyes = (slice(9, 17), slice(6, 26))
    blink = crops.copy()
    blink[8:11][:, eyes[0], eyes[1]] = np.clip(blink[8:11][:, eyes[0], eyes[1]].astype(int) - 60, 0, 255)
    change = blink.astype(float) - crops.astype(float)
    out = steady_crops(blink, affines, landmarks, 1.0)
    base = steady_crops(crops, affines, landmarks, 1.0)
    inner = (slice(10, 16), slice(8, 24))  # inside the eyes, away from the blur at their edge
    for t in (8, 9, 10):  # closed: the whole change shows in each frame, from the first
        shown = (out[t].astype(float) - base[t])[inner].mean() / change[t][inner].mean()
        assert shown > 0.9, (t, shown)
    # open again: back within a few levels of the face without the blink in 2 frames
    assert np.abs(out[12].astype(float) - base[12])[inner].mean() < 4.0
    # the shimmer elsewhere is still averaged away as before
    assert _flicker(out[:, 20:]) == pytest.approx(_flicker(base[:, 20:]), rel=0.05)
    # without the change gate the blend would have hidden most of the blink
    ungated = steady_crops(blink, affines, landmarks, 1.0, change_levels=np.inf)
    assert (ungated[8].astype(float) - base[8])[inner].mean() / change[8][inner].mean() < 0.3


def test_the_blend_fades_out_as_the_face_moves_up_to_still():
    """STILL is a fraction of the crop's width: 1 px of these 32-px crops (16 px of a 512-px one)."""
    crops, affines, landmarks = _still(frames=3)
    assert STILL * S == 1.0
    for step_px, blended in [(0.0, True), (0.5, True), (1.0, False), (3.0, False)]:
        moved = landmarks.copy()
        moved[1, :, 1] += step_px / 2  # frame pixels; the crop is 2×
        moved[2, :, 1] += step_px
        out = steady_crops(crops, affines, moved, 1.0)
        assert (not np.array_equal(out[1], crops[1])) is blended, step_px


def test_the_previous_crop_is_carried_into_this_frame_s_crop():
    """A face that stands still while its alignment creeps by a fraction of a pixel per frame: each
    crop shows it a little elsewhere. Blended where they are, the crops would smear the face; carried
    over, the steadied crop is the face where this frame's crop has it, with less noise."""
    import cv2

    rng = np.random.default_rng(3)
    frame = _face(2 * S, waves=12.0).astype(np.float32)  # frame pixels: the crop is half as large
    frames = 30
    creep = 0.1 * np.arange(frames)  # frame pixels to the right, per frame (0.05 crop px: a twentieth of STILL)
    affines = np.array([[[0.5, 0.0, -0.5 * dx], [0.0, 0.5, 0.0]] for dx in creep])
    landmarks = np.array([2 * LANDMARKS + [dx, 0.0] for dx in creep])  # what the alignment follows
    clean = np.stack([cv2.warpAffine(frame, a, (S, S), flags=cv2.INTER_LINEAR) for a in affines])
    crops = np.clip(np.rint(clean + rng.normal(0, 6, clean.shape)), 0, 255).astype(np.uint8)
    out = steady_crops(crops, affines, landmarks, 1.0)
    inner = (slice(10, None), slice(5, -5), slice(5, -5))  # after the start, away from the replicated border
    error_in = np.abs(crops[inner].astype(float) - clean[inner]).mean()
    error_out = np.abs(out[inner].astype(float) - clean[inner]).mean()
    assert error_out < 0.47 * error_in, (error_in, error_out)  # measured 2.19 vs 4.78 (not carried: 2.42)


def test_tracks_are_steadied_apart_and_start_afresh_after_a_gap():
    a, affines, landmarks = _still(frames=10, seed=1)
    b = (255 - a)  # another face
    # frames 0-9: face A in every frame, face B in frames 0-3 and 6-9 (a gap of two frames)
    frames_b = np.array([0, 1, 2, 3, 6, 7, 8, 9])
    restored = np.concatenate([a, b[frames_b]])
    frame_index = np.concatenate([np.arange(10), frames_b])
    track_ids = np.array([0] * 10 + [1] * 8)
    order = np.lexsort((track_ids, frame_index))  # frame after frame, as the engine keeps them
    out = steady_tracks(restored[order], np.concatenate([affines, affines[:8]])[order],
                        np.concatenate([landmarks, landmarks[:8]])[order], frame_index[order], track_ids[order], 1.0)
    back = np.empty_like(out)
    back[order] = out
    assert np.array_equal(back[:10], steady_crops(a, affines, landmarks, 1.0))
    assert np.array_equal(back[10:14], steady_crops(b[:4], affines[:4], landmarks[:4], 1.0))
    assert np.array_equal(back[14], b[6])  # after the gap: its own crop
    assert np.array_equal(back[14:], steady_crops(b[6:], affines[6:], landmarks[6:], 1.0))


def test_a_clip_steadied_in_chunks_is_the_clip_steadied_at_once():
    crops, affines, landmarks = _still(frames=20)
    crops = crops.astype(np.float32)  # in float nothing is rounded between the chunks
    whole = steady_crops(crops, affines, landmarks, 0.7)
    first = steady_crops(crops[:8], affines[:8], landmarks[:8], 0.7)
    rest = steady_crops(crops[8:], affines[8:], landmarks[8:], 0.7,
                        previous=Last(first[-1], affines[7], landmarks[7]))
    np.testing.assert_allclose(np.concatenate([first, rest]), whole, atol=1e-4)
    # by track, as the engine would run a clip 8 frames at a time (frame numbers start at 0 in each chunk)
    chunks, last = [], {}
    for start in range(0, 20, 8):
        part = slice(start, start + 8)
        n = len(crops[part])
        out = steady_tracks(crops[part], affines[part], landmarks[part], np.arange(n), np.zeros(n, int), 0.7,
                            previous=last)
        last = last_of_tracks(out, affines[part], landmarks[part], np.arange(n), np.zeros(n, int))
        chunks.append(out)
    np.testing.assert_allclose(np.concatenate(chunks), whole, atol=1e-4)
    assert set(last) == {0} and np.array_equal(last[0].crop, chunks[-1][-1])


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_a_strength_outside_0_to_1_is_refused(strength):
    crops, affines, landmarks = _still(frames=3)
    with pytest.raises(InvalidOptionError):
        steady_crops(crops, affines, landmarks, strength)
