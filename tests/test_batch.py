"""Face stages over a batch of frames with different numbers of faces (what the ComfyUI stage nodes
use): the engine's detect, choose and crop stages, and :meth:`Engine.paste_crops` for crops edited
elsewhere."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from gfp_core.engine import Engine, check_frames, choose_faces, crop_faces, detect_frames
from gfp_core.errors import InvalidImageError
from gfp_core.face.detection import load_detector


@pytest.fixture(scope="module")
def frames():
    img = data.astronaut()
    return [img, np.full_like(img, 128), img[:, ::-1].copy()]  # face, no face, mirrored face


def _faces(frames, **choice):
    found = detect_frames(load_detector("embedded"), frames)
    return choose_faces(found, [f.shape[:2] for f in frames], **choice)


def test_frames_with_and_without_faces(frames):
    faces = _faces(frames)
    assert faces.counts == [1, 0, 1] and faces.total == 2
    crops = crop_faces(frames, faces)
    assert crops.shape == (2, 512, 512, 3)
    # an "edit" by another node: inverted colours at a different size
    edited = 255 - crops[:, ::2, ::2]
    result = Engine(None, mask="box", coverage=True).paste_crops(frames, faces, edited)
    images, coverage = result.frames, result.coverage
    assert np.array_equal(images[1], frames[1]) and coverage[1].max() == 0
    for i in (0, 2):
        inside = coverage[i] > 0.99
        assert inside.sum() > 5000
        assert np.abs(images[i][inside].astype(int) - frames[i][inside]).mean() > 50  # the edit shows
        assert np.array_equal(images[i][coverage[i] == 0], frames[i][coverage[i] == 0])
    assert result.num_restored == [1, 0, 1] and result.masks.shape == (2, 512, 512)


def test_colour_matching_pasted_crops_pulls_them_to_the_original_faces(frames):
    faces = _faces(frames)
    crops = crop_faces(frames, faces)
    tinted = np.clip(crops.astype(int) + [60, 0, -40], 0, 255).astype(np.uint8)
    plain = Engine(None).paste_crops(frames, faces, tinted).frames[0]
    matched = Engine(None, colour_match=True).paste_crops(frames, faces, tinted).frames[0]
    box = faces.faces[0][0].box.astype(int)
    region = (slice(box[1], box[3]), slice(box[0], box[2]))
    error = [np.abs(img[region].astype(int) - frames[0][region]).mean() for img in (plain, matched)]
    assert error[1] < error[0] / 3, error


def test_wrong_number_of_crops_or_frames_is_a_clear_error(frames):
    faces = _faces(frames)
    crops = crop_faces(frames, faces)
    with pytest.raises(InvalidImageError, match="got 1 face crops, but these faces need 2"):
        Engine(None).paste_crops(frames, faces, crops[:1])
    with pytest.raises(InvalidImageError, match="found in 3 frame"):
        crop_faces(frames[:2], faces)
    with pytest.raises(InvalidImageError, match="found in 3 frame"):
        check_frames(frames[::-1][:2], faces)
    with pytest.raises(InvalidImageError, match=r"a batch of RGB images \[N, H, W, 3\], got \[2, 512, 512\]"):
        Engine(None).paste_crops(frames, faces, crops[..., 0])


def test_a_frame_without_the_face_an_index_asks_for_is_skipped(frames):
    faces = _faces(frames, select="indices", indices=[0])
    assert faces.counts == [1, 0, 1] and faces.numbers == [[0], [], [0]]
    assert faces.notes == ["1 of 3 frames had no face and were passed through unchanged"]
    floats = [f.astype(np.float32) / 255 + np.float32(0.3 / 255) for f in frames]
    result = Engine(None, coverage=True).paste_crops(floats, faces, crop_faces(frames, faces))
    images, coverage = result.frames, result.coverage
    assert images[1].dtype == np.float32 and np.array_equal(images[1], floats[1])  # floats stay floats
    assert np.array_equal(images[0][coverage[0] == 0], floats[0][coverage[0] == 0])
