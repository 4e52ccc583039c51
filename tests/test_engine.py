"""The one engine (gfp_core/engine.py) on batches of frames: what comes back for float, 16-bit and
8-bit frames, faceless frames, per-frame face choice, and the faces' numbers."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from gfp_core.engine import Engine
from gfp_core.errors import FaceSelectionError
from gfp_core.face.align import align_faces, inverse_alignment
from gfp_core.face.detection import detect_faces, load_detector
from gfp_core.face.masks import face_masks
from gfp_core.face.paste import paste_faces
from gfp_core.face.select import reading_order
from gfp_core.pipeline import FaceRestorer
from gfp_core.restore import restore_aligned
from gfp_core.weights import load_model


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return load_model(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def detector():
    return load_detector("embedded")


def two_faces() -> np.ndarray:
    """A 512×512 frame with two astronauts of 256 px side by side (grey below)."""
    small = cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.full((512, 512, 3), 128, np.uint8)
    frame[:256, :256] = small
    frame[:256, 256:] = small[:, ::-1]
    return frame


def between_levels(rgb8: np.ndarray) -> np.ndarray:
    """Float frames whose every value lies between two 8-bit levels."""
    return ((rgb8.astype(np.float64) + 0.37) / 255).astype(np.float32)


def test_a_float_batch_with_a_faceless_frame_and_indices(model, detector):
    frames = np.stack([between_levels(data.astronaut()), between_levels(np.full((512, 512, 3), 90, np.uint8)),
                       between_levels(two_faces())])
    engine = Engine(model, detector=detector, select="indices", indices=[0, 1], coverage=True)
    result = engine.run(frames)

    out = result.images
    assert out.dtype == np.float32 and out.shape == frames.shape
    assert result.num_found == [1, 0, 2] and result.num_restored == [1, 0, 2]
    assert result.chosen == [[0], [], [0, 1]]
    assert result.frame_index.tolist() == [0, 2, 2] and result.numbers.tolist() == [0, 0, 1]
    assert result.crops.shape == result.restored.shape == (3, 64, 64, 3)
    assert result.affines.shape == (3, 2, 3) and result.masks.shape == (3, 64, 64)
    assert np.array_equal(out[1], frames[1])  # the faceless frame, bit for bit
    for i in (0, 2):
        untouched = result.coverage[i] == 0
        assert untouched.mean() > 0.5
        # no pixel outside the masks is rounded to 8 bits or changed in any way
        assert np.array_equal(out[i][untouched], frames[i][untouched])
        assert np.abs(out[i] - frames[i]).max() > 0.05  # the faces were restored
    assert result.notes == [
        "1 of 3 frames had no face and were passed through unchanged",
        "1 of 3 frames had fewer faces than the indices asked for (frame 0); the missing indices were skipped there"]


def test_an_index_no_frame_has_is_an_error_and_faceless_batches_pass(model, detector):
    frames = np.stack([data.astronaut(), np.full((512, 512, 3), 90, np.uint8)])
    with pytest.raises(FaceSelectionError, match="face index 3 is out of range in every frame: the most faces "
                                                 r"found in one frame is 1 \(indices 0 to 0\)"):
        Engine(model, detector=detector, select="indices", indices=[0, 3]).run(frames)
    blank = np.full((2, 256, 256, 3), 0.5, np.float16)
    result = Engine(model, detector=detector, select="indices", indices=[2]).run(blank)
    assert result.images.dtype == np.float16 and np.array_equal(result.images, blank)
    assert result.num_found == [0, 0] and result.notes == ["2 of 2 frames had no face and were passed through "
                                                           "unchanged"]


def test_the_numbers_are_the_reading_order_of_every_face_found(model, detector):
    frame = two_faces()
    result = Engine(model, detector=detector).run(frame)
    expected = reading_order(detect_faces(detector, frame))
    assert [f.box.tolist() for f in result.found[0]] == [f.box.tolist() for f in expected]
    assert result.numbers.tolist() == [0, 1]
    picked = Engine(model, detector=detector, select="indices", indices=[1]).run(frame)
    assert picked.numbers.tolist() == [1] and picked.faces[0] is picked.found[0][1]
    assert picked.faces[0].box.tolist() == expected[1].box.tolist()


def reference(model, detector, picture8: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The stages strung together by hand, as FaceRestorer did before the engine: detect on 8 bits,
    align, restore one face at a time, box masks, paste into ``base``."""
    faces = reading_order(detect_faces(detector, picture8))
    crops, affines = align_faces(picture8, faces, face_size=64)
    restored = restore_aligned(model, crops, batch_size=1)
    masks = face_masks("box", faces, affines, restored, face_size=64)
    return paste_faces(base.copy(), list(restored), [inverse_alignment(a) for a in affines], list(masks))


def test_uint8_and_uint16_frames_keep_today_s_numerics(model, detector):
    img = data.astronaut()
    batch8 = np.stack([img, img[:, ::-1]])
    out8 = Engine(model, detector=detector).run(batch8).images
    assert out8.dtype == np.uint8
    for frame, got in zip(batch8, out8):
        assert np.array_equal(got, reference(model, detector, frame, frame))

    deep = img.astype(np.uint16) * 257 + 100
    got16 = Engine(model, detector=detector).run(deep).image
    rgb8 = ((deep.astype(np.uint32) + 128) // 257).astype(np.uint8)
    expected = reference(model, detector, rgb8, deep.astype(np.float32) / 65535)
    assert got16.dtype == np.uint16
    assert np.array_equal(got16, np.clip(expected * 65535 + 0.5, 0, 65535).astype(np.uint16))


def test_grey_and_alpha_frames_keep_their_layout(model, detector):
    img = between_levels(data.astronaut())
    grey = img[..., :1].copy()
    rgba = np.concatenate([img, np.linspace(0, 1, 512, dtype=np.float32)[None, :, None].repeat(512, 0)], axis=2)
    out_grey = Engine(model, detector=detector, upscale=1).run(grey[None]).images
    assert out_grey.shape == (1, 512, 512, 1) and out_grey.dtype == np.float32
    assert np.array_equal(out_grey[0, 400:], grey[400:])
    out_rgba = Engine(model, detector=detector).run(rgba[None]).images
    assert out_rgba.shape == (1, 512, 512, 4) and np.array_equal(out_rgba[0, ..., 3], rgba[..., 3])
    assert np.array_equal(out_rgba[0, 400:], rgba[400:])


@pytest.mark.parametrize("options", [dict(), dict(upscale=2, mask="ellipse", visibility=0.7, fidelity=0.5)])
def test_face_restorer_and_the_engine_give_the_same_pixels(model, detector, options):
    img = data.astronaut()
    ours = FaceRestorer(model, detector=detector, **options).restore(img)
    engine = Engine(model, detector=detector, **options).run(img)
    assert np.array_equal(ours.image, engine.image)
    assert ours.num_detected == 1 and ours.numbers == [0] and ours.notes == []
    assert np.array_equal(ours.restored_faces, engine.restored)
