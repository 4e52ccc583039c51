"""Faces across video frames: linking into tracks with stable ids, gaps filled in, and the temporal
smoothing of the alignment, on hand-made faces and on a real photo turned into a noisy JPEG clip."""
from __future__ import annotations

import math

import numpy as np
import pytest

from clips import alignment_jitter, crop_positions, make_clip
from gfp_core.errors import InvalidOptionError
from gfp_core.face.align import estimate_alignment
from gfp_core.face.detection import EmbeddedRetinaFace, detect_faces
from gfp_core.face.track import (DEFAULT_MAX_GAP, DEFAULT_STRENGTH, FaceTracker, Tracks, link_tracks,
                                 look_ahead_frames, smooth_tracks)
from gfp_core.face.types import Face

#: a frontal face's 5 landmarks relative to its box's top-left corner, for a 100-px box
SHAPE = np.array([[30.0, 40.0], [70.0, 40.0], [50.0, 60.0], [35.0, 78.0], [65.0, 78.0]])


def face_at(x: float, y: float, size: float = 100.0, score: float = 0.99) -> Face:
    """A face whose box's top-left corner is at (x, y)."""
    k = size / 100.0
    return Face(np.array([x, y, x + size, y + size], np.float32), (SHAPE * k + (x, y)).astype(np.float32), score)


def ids(tracks: Tracks) -> list[list[int]]:
    return [[e.track for e in frame] for frame in tracks.per_frame()]


def centre_x(face: Face) -> float:
    return float(face.box[0] + face.box[2]) / 2


def second_difference(points: np.ndarray) -> float:
    """RMS second difference over time of ``[T, K, 2]`` points (pixels)."""
    d = points[2:] - 2 * points[1:-1] + points[:-2]
    return float(np.sqrt(np.mean(np.sum(d ** 2, axis=-1))))


# --- linking ------------------------------------------------------------------------------------

def test_crossing_faces_keep_their_ids_when_their_reading_order_swaps():
    # A walks right along y=100, B walks left along y=220; they pass each other at frame 5
    found = [[face_at(50 + 30 * t, 100), face_at(350 - 30 * t, 220)] for t in range(11)]
    tracks = link_tracks(found)
    assert len(tracks) == 2 and ids(tracks) == [[0, 1]] * 11
    a, b = tracks.tracks
    assert all(a.faces[t] is found[t][0] and b.faces[t] is found[t][1] for t in range(11))  # the faces themselves
    assert centre_x(a.faces[0]) < centre_x(b.faces[0]) and centre_x(a.faces[-1]) > centre_x(b.faces[-1])


def test_the_order_of_faces_within_a_frame_does_not_matter():
    found = [[face_at(50 + 30 * t, 100), face_at(350 - 30 * t, 220), face_at(200, 400)] for t in range(8)]
    shuffled = [fs[::-1] if t % 2 else fs[1:] + fs[:1] for t, fs in enumerate(found)]
    a, b = link_tracks(found), link_tracks(shuffled)
    assert [[centre_x(e.face) for e in f] for f in a.per_frame()] == [[centre_x(e.face) for e in f]
                                                                       for f in b.per_frame()]
    # numbered in reading order in the first frame: left to right
    assert [centre_x(t.faces[0]) for t in a] == [100.0, 250.0, 400.0]


def test_a_face_missing_for_two_frames_is_filled_in_linearly():
    found = [[face_at(10 + 8 * t, 50 + 2 * t)] for t in range(10)]
    found[4] = found[5] = []
    tracks = link_tracks(found)
    assert len(tracks) == 1 and ids(tracks) == [[0]] * 10
    track = tracks.tracks[0]
    assert track.interpolated == (False,) * 4 + (True, True) + (False,) * 4
    for t in (4, 5):
        filled = track.faces[t]
        expected = face_at(10 + 8 * t, 50 + 2 * t)
        np.testing.assert_allclose(filled.landmarks, expected.landmarks, atol=1e-4)
        np.testing.assert_allclose(filled.box, expected.box, atol=1e-4)
        assert filled.score == 0.0 and filled.landmarks.dtype == np.float32
        assert [e.interpolated for e in tracks.frame(t)] == [True]
    assert all(e.face.score == 0.99 for t in (3, 6) for e in tracks.frame(t))


@pytest.mark.parametrize("missing", [DEFAULT_MAX_GAP, DEFAULT_MAX_GAP + 1])
def test_a_track_bridges_max_gap_frames_and_no_more(missing):
    found = [[face_at(100 + 2 * t, 100)] for t in range(3 + missing + 3)]
    for t in range(3, 3 + missing):
        found[t] = []
    tracks = link_tracks(found)
    if missing <= DEFAULT_MAX_GAP:
        assert len(tracks) == 1 and all(len(f) == 1 for f in tracks.per_frame())
    else:
        assert len(tracks) == 2
        assert ids(tracks) == [[0]] * 3 + [[]] * missing + [[1]] * 3
    # the gap is a parameter
    assert len(link_tracks(found, max_gap=missing)) == 1 and len(link_tracks(found, max_gap=missing - 1)) == 2


def test_faces_that_appear_later_get_the_next_ids_in_reading_order():
    found = [[face_at(300, 100)] for _ in range(8)]
    for t in range(3, 8):  # two faces arrive in frame 3, both left of the first one
        found[t] = [face_at(300, 100), face_at(40, 300), face_at(150, 100)]
    found[6].append(face_at(500, 20))  # and one more in frame 6
    tracks = link_tracks(found)
    # face 3 was seen once: its track ends with frame 6
    assert ids(tracks) == [[0]] * 3 + [[0, 1, 2]] * 3 + [[0, 1, 2, 3]] + [[0, 1, 2]]
    assert [t.first for t in tracks] == [0, 3, 3, 6]
    assert [centre_x(t.faces[0]) for t in tracks] == [350.0, 90.0, 200.0, 550.0]


def test_a_face_that_moved_more_than_its_size_is_another_face():
    found = [[face_at(100, 100)], [face_at(100, 100)], [face_at(260, 100)]]
    assert ids(link_tracks(found)) == [[0], [0], [1]]
    assert ids(link_tracks(found, max_distance=2.0)) == [[0], [0], [0]]


# --- smoothing ----------------------------------------------------------------------------------

def test_strength_zero_gives_every_face_back_as_detected():
    rng = np.random.default_rng(1)
    found = [[face_at(100 + rng.normal(), 100 + rng.normal())] for _ in range(12)]
    found[5] = []
    tracks = link_tracks(found)
    assert smooth_tracks(tracks, 0.0) is tracks
    assert smooth_tracks(tracks, 0) is tracks
    tracker = FaceTracker(0.0)
    streamed = [entry for fs in found for entry in tracker.push(fs)] + tracker.finish()
    assert tracker.delay == DEFAULT_MAX_GAP and look_ahead_frames(0) == 0
    for t, entries in streamed:
        (entry,) = entries
        if t != 5:
            assert entry.face is found[t][0]
            assert np.array_equal(entry.face.landmarks, found[t][0].landmarks)


@pytest.mark.parametrize("strength", [-0.1, 1.01, float("nan"), "0.5", None, True])
def test_strength_outside_0_1_is_refused(strength):
    tracks = link_tracks([[face_at(0, 0)]])
    with pytest.raises(InvalidOptionError) as caught:
        smooth_tracks(tracks, strength)
    assert caught.value.setting == "smoothing" and "smoothing" in str(caught.value)
    with pytest.raises(InvalidOptionError):
        FaceTracker(strength)


def test_bad_fps_and_gap_are_refused():
    tracks = link_tracks([[face_at(0, 0)]])
    for fps in (0, -30, float("nan"), float("inf")):
        with pytest.raises(InvalidOptionError, match="fps"):
            smooth_tracks(tracks, 0.5, fps)
    for gap in (-1, 1.5):
        with pytest.raises(InvalidOptionError, match="max_gap"):
            link_tracks([], max_gap=gap)


def synthetic_track(rng: np.random.Generator, frames: int = 90, jump_at: int = 60, noise: float = 0.5,
                    sway: float = 8.0):
    """A 100-px face swaying on a slow curve (``sway`` px, a 4-s period), jumping 40 px right at
    ``jump_at``, with detector-like noise (``noise`` px per coordinate); the faces and the true
    landmarks ``[T, 5, 2]``."""
    t = np.arange(frames)
    x = 200 + sway * np.sin(2 * np.pi * t / 120) + 40 * (t >= jump_at)
    y = 150 + sway / 3 * np.cos(2 * np.pi * t / 90)
    truth = np.stack([SHAPE + (a, b) for a, b in zip(x, y)])
    faces = [[Face(np.array([a, b, a + 100, b + 100], np.float32),
                   (lm + rng.normal(0, noise, lm.shape)).astype(np.float32), 0.99)]
             for a, b, lm in zip(x, y, truth)]
    return faces, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_smoothing_removes_jitter_and_follows_a_sudden_move_within_two_frames(seed):
    found, truth = synthetic_track(np.random.default_rng(seed))
    k = 60
    raw = link_tracks(found)
    raw_error = np.linalg.norm(raw.tracks[0].landmarks - truth, axis=-1).max(axis=-1)
    jitter = {}
    for strength in (0.0, 0.25, DEFAULT_STRENGTH, 1.0):
        lm = smooth_tracks(raw, strength, fps=30).tracks[0].landmarks.astype(np.float64)
        jitter[strength] = second_difference(lm[: k - 4])  # away from the jump
        error = np.linalg.norm(lm - truth, axis=-1).max(axis=-1)  # the worst landmark, per frame
        if strength in (DEFAULT_STRENGTH, 1.0):
            # two frames after the jump the face is where it is, within the detector's noise
            assert np.all(error[k + 2: k + 12] < 2.0), (strength, error[k - 3: k + 6].round(2))
            # and on the curve the smoothed face is nearer the truth than the detections: no lag
            assert np.sqrt(np.mean(error[5: k - 5] ** 2)) < 0.8 * np.sqrt(np.mean(raw_error[5: k - 5] ** 2))
    assert jitter[0.0] / jitter[DEFAULT_STRENGTH] >= 3.0, jitter
    assert jitter[0.0] > jitter[0.25] > jitter[DEFAULT_STRENGTH] > jitter[1.0], jitter


def test_a_fast_moving_face_is_smoothed_without_straying_from_it():
    """A quadratic fit follows a face that sways by 30 px a second: the jitter drops as much as on a
    slow face, and the face stays nearer the truth than the detections."""
    found, truth = synthetic_track(np.random.default_rng(4), sway=30.0, jump_at=1000)
    raw = link_tracks(found)
    lm = smooth_tracks(raw, DEFAULT_STRENGTH, fps=30).tracks[0].landmarks
    assert second_difference(raw.tracks[0].landmarks) / second_difference(lm) >= 3.0
    assert np.linalg.norm(lm - truth, axis=-1).mean() < np.linalg.norm(raw.tracks[0].landmarks - truth,
                                                                       axis=-1).mean()


def test_smoothing_is_the_same_at_any_frame_rate():
    """Time constants are in seconds: a clip at 60 fps smooths like the same motion at 30 fps."""
    rng = np.random.default_rng(3)
    found, truth = synthetic_track(rng, frames=120, jump_at=200, noise=0.7)
    at30 = smooth_tracks(link_tracks(found[::2]), 0.5, fps=30).tracks[0].landmarks
    at60 = smooth_tracks(link_tracks(found), 0.5, fps=60).tracks[0].landmarks
    assert look_ahead_frames(0.5, 60) >= 2 * look_ahead_frames(0.5, 30) - 1
    # noise halves per second at 60 fps (twice the samples), so the 60-fps result is at least as close
    e30 = np.linalg.norm(at30 - truth[::2], axis=-1).mean()
    e60 = np.linalg.norm(at60[::2] - truth[::2], axis=-1).mean()
    assert e60 < e30 * 1.1


def test_streaming_in_chunks_gives_the_same_faces_as_the_whole_clip():
    rng = np.random.default_rng(5)
    a, _ = synthetic_track(rng, frames=70, jump_at=40)
    b, _ = synthetic_track(rng, frames=70, jump_at=100)
    found = [[fa[0], Face(fb[0].box + [0, 200, 0, 200], fb[0].landmarks + [0, 200], 0.9)] for fa, fb in zip(a, b)]
    for t in (10, 11, 12, 30, 31, 32, 33, 34, 35, 36, 50):  # a short gap, a long one, a lone miss
        found[t] = found[t][:1]
    found[20].append(face_at(600, 20))  # a face seen once
    for strength in (0.0, 0.5, 1.0):
        whole = smooth_tracks(link_tracks(found), strength, fps=25).per_frame()
        tracker = FaceTracker(strength, fps=25)
        streamed, lag = [], []
        for t, faces in enumerate(found):
            out = tracker.push(faces)
            lag += [t - i for i, _ in out]
            streamed += out
        streamed += tracker.finish()
        assert [i for i, _ in streamed] == list(range(len(found)))
        assert set(lag) == {tracker.delay} and tracker.delay == DEFAULT_MAX_GAP + look_ahead_frames(strength, 25)
        for (_, got), want in zip(streamed, whole):
            assert [(e.track, e.interpolated) for e in got] == [(e.track, e.interpolated) for e in want]
            for e, w in zip(got, want):  # bit for bit
                assert np.array_equal(e.face.landmarks, w.face.landmarks) and np.array_equal(e.face.box, w.face.box)


# --- a real clip, the real detector ---------------------------------------------------------------

@pytest.fixture(scope="module")
def detector() -> EmbeddedRetinaFace:
    return EmbeddedRetinaFace()


def aligned(tracks: Tracks) -> np.ndarray:
    (track,) = tracks.tracks
    return np.stack([estimate_alignment(f.landmarks) for f in track.faces])


def test_alignment_jitter_of_a_still_face_in_a_noisy_jpeg_clip_drops_3x(detector):
    clip = make_clip("still", frames=30, noise=4.0, jpeg_quality=70, seed=11)
    reference = detect_faces(detector, clip.photo)
    assert len(reference) == 1
    truth = clip.truth(reference[0].landmarks)
    tracks = link_tracks([detect_faces(detector, f) for f in clip.frames])
    assert len(tracks) == 1 and len(tracks.tracks[0]) == len(clip)
    raw = aligned(tracks)
    smooth = aligned(smooth_tracks(tracks, DEFAULT_STRENGTH, clip.fps))
    before, after = alignment_jitter(raw, truth), alignment_jitter(smooth, truth)
    assert before > 0.3  # the detector does shake: a fraction of a pixel in the photo, more in the crop
    assert before / after >= 3.0, (before, after)
    # and the smoothed crop sits where the detections say the face is, on average
    drift = crop_positions(smooth, truth).mean(0) - crop_positions(raw, truth).mean(0)
    assert np.abs(drift).max() < 0.5


def test_a_moving_face_is_followed_without_lag(detector):
    clip = make_clip("moving", frames=60, seed=12)
    truth = clip.truth(detect_faces(detector, clip.photo)[0].landmarks)
    tracks = link_tracks([detect_faces(detector, f) for f in clip.frames])
    raw, smooth = aligned(tracks), aligned(smooth_tracks(tracks, DEFAULT_STRENGTH, clip.fps))
    assert alignment_jitter(raw, truth) / alignment_jitter(smooth, truth) >= 3.0

    def error(affines):  # how far the face's true points stray in the crop (crop pixels)
        pos = crop_positions(affines, truth)
        return math.sqrt(np.mean(np.sum((pos - crop_positions(raw, truth).mean(0)) ** 2, axis=-1)))
    assert error(smooth) < error(raw)
