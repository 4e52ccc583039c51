"""Face stages over a batch of frames with different numbers of faces (what the ComfyUI nodes use)."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from gfp_core.errors import InvalidImageError
from gfp_core.face.batch import crop_batch, detect_batch, paste_batch
from gfp_core.face.detection import load_detector


@pytest.fixture(scope="module")
def frames():
    img = data.astronaut()
    return [img, np.full_like(img, 128), img[:, ::-1].copy()]  # face, no face, mirrored face


def test_frames_with_and_without_faces(frames):
    faces = detect_batch(load_detector("embedded"), frames)
    assert faces.counts == [1, 0, 1] and faces.total == 2
    crops = crop_batch(frames, faces)
    assert crops.shape == (2, 512, 512, 3)
    # an "edit" by another node: inverted colours at a different size
    edited = 255 - crops[:, ::2, ::2]
    images, coverage = paste_batch(frames, faces, edited, mask="box")
    assert np.array_equal(images[1], frames[1]) and coverage[1].max() == 0
    for i in (0, 2):
        inside = coverage[i] > 0.99
        assert inside.sum() > 5000
        assert np.abs(images[i][inside].astype(int) - frames[i][inside]).mean() > 50  # the edit shows
        assert np.array_equal(images[i][coverage[i] == 0], frames[i][coverage[i] == 0])


def test_wrong_number_of_crops_or_frames_is_a_clear_error(frames):
    faces = detect_batch(load_detector("embedded"), frames)
    crops = crop_batch(frames, faces)
    with pytest.raises(InvalidImageError, match="got 1 face crops, but these faces need 2"):
        paste_batch(frames, faces, crops[:1])
    with pytest.raises(InvalidImageError, match="found in 3 frame"):
        crop_batch(frames[:2], faces)


def test_a_frame_without_the_face_an_index_asks_for_is_skipped(frames):
    detector = load_detector("embedded")
    faces = detect_batch(detector, frames, select="indices", indices=[0])
    assert faces.counts == [1, 0, 1] and faces.numbers == [[0], [], [0]]
    assert faces.notes == ["1 of 3 frames had no face and were passed through unchanged"]
    floats = [f.astype(np.float32) / 255 + np.float32(0.3 / 255) for f in frames]
    images, coverage = paste_batch(floats, faces, crop_batch(frames, faces))
    assert images[1].dtype == np.float32 and np.array_equal(images[1], floats[1])  # floats stay floats
    assert np.array_equal(images[0][coverage[0] == 0], floats[0][coverage[0] == 0])
