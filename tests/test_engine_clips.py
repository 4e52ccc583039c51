"""The engine on a clip: faces followed from frame to frame (stable numbers, choice by track) and
their alignment smoothed; smoothing 0 is every frame on its own."""
from __future__ import annotations

import numpy as np
import pytest

from clips import alignment_jitter, make_clip
from gfp_core.engine import Engine
from gfp_core.errors import FaceSelectionError, InvalidOptionError
from gfp_core.face.detection import EmbeddedRetinaFace, detect_faces
from gfp_core.weights import load_model


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def detector():
    return EmbeddedRetinaFace()


def _engine(model, detector, **options) -> Engine:
    return Engine(model, detector=detector, **options)


def test_a_still_face_s_crop_shakes_3x_less_and_the_pixels_around_it_are_untouched(model, detector):
    clip = make_clip("still", frames=16, seed=3)
    truth = clip.truth(detect_faces(detector, clip.photo)[0].landmarks)
    alone = _engine(model, detector).run(clip.frames)
    smooth = _engine(model, detector, smoothing=0.5, fps=clip.fps, coverage=True).run(clip.frames)
    assert alone.num_restored == smooth.num_restored == [1] * len(clip)
    assert smooth.found_numbers == [[0]] * len(clip)
    before, after = alignment_jitter(alone.affines, truth), alignment_jitter(smooth.affines, truth)
    assert before / after >= 3.0, (before, after)
    for frame, out, cover in zip(clip.frames, smooth.frames, smooth.coverage):
        assert np.array_equal(out[cover == 0], frame[cover == 0])


def test_smoothing_zero_is_every_frame_on_its_own(model, detector):
    clip = make_clip("moving", frames=4, seed=4)
    batch = _engine(model, detector, smoothing=0).run(clip.frames)
    for i, frame in enumerate(clip.frames):
        single = _engine(model, detector).run(frame)
        assert np.array_equal(batch.frames[i], single.image)


def test_a_face_that_enters_later_does_not_take_the_first_face_s_number(model, detector):
    """Reading order would make the newcomer on the left face 0 from the frame it appears; by track
    the astronaut on the right stays face 0 in every frame, and 'indices 0' restores only her."""
    right = make_clip("still", frames=8, size=(256, 256), seed=5).frames
    left = make_clip("still", frames=8, size=(256, 256), seed=6).frames
    blank = np.full_like(left[:4], 90)
    frames = np.concatenate([np.concatenate([blank, left[4:]])[:, :, :, :], right], axis=2)  # 256×512
    result = _engine(model, detector, smoothing=0.5, select="indices", indices=[0], coverage=True).run(frames)
    assert result.found_numbers[:4] == [[0]] * 4 and all(sorted(n) == [0, 1] for n in result.found_numbers[4:])
    assert result.chosen == [[0]] * 8
    for cover in result.coverage:
        assert cover[:, :256].max() == 0 and cover[:, 256:].max() > 0.99  # only the right half
    per_frame = _engine(model, detector, smoothing=0, select="indices", indices=[0], coverage=True).run(frames)
    assert per_frame.coverage[-1][:, :256].max() > 0.99  # frame by frame, face 0 is the newcomer
    with pytest.raises(FaceSelectionError, match="face index 2 is out of range: 2 faces were followed"):
        _engine(model, detector, smoothing=0.5, select="indices", indices=[2]).run(frames)


def test_largest_chooses_one_track_for_the_whole_clip(model, detector):
    small = make_clip("still", frames=6, size=(256, 256), scale=0.8, seed=7).frames
    large = make_clip("still", frames=6, size=(256, 256), scale=1.0, seed=8).frames
    result = _engine(model, detector, smoothing=0.5, select="largest").run(np.concatenate([small, large], axis=2))
    assert len({n for ns in result.chosen for n in ns}) == 1 and result.num_restored == [1] * 6
    assert all(f.box[0] >= 256 for f in result.faces)  # the larger face is on the right


@pytest.mark.parametrize("options, setting", [({"smoothing": 1.5}, "smoothing"), ({"smoothing": -0.1}, "smoothing"),
                                              ({"fps": 0}, "fps"), ({"fps": float("nan")}, "fps")])
def test_bad_smoothing_and_frame_rates_are_refused(model, options, setting):
    with pytest.raises(InvalidOptionError) as caught:
        Engine(model, **options)
    assert caught.value.setting == setting
