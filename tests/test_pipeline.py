"""FaceRestorer end to end on real photos: faces found, restored, pasted; everything else untouched."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from gfp_core.errors import FaceSelectionError, InvalidImageError
from gfp_core.image import read_picture, write_image
from gfp_core.pipeline import FaceRestorer


def t1_photo() -> np.ndarray:
    root = Path(importlib.util.find_spec("insightface").submodule_search_locations[0])
    return np.asarray(Image.open(root / "data" / "images" / "t1.jpg").convert("RGB"))


@pytest.fixture(scope="module")
def restorer(tiny_checkpoint):
    """A small random-weight GFPGAN (64 px crops) with the embedded detector: fast, and every face
    it touches visibly changes."""
    return FaceRestorer(tiny_checkpoint, detector="embedded")


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = np.abs(a.astype(int) - b.astype(int))
    return diff.max(axis=-1) > 0 if diff.ndim == 3 else diff > 0


def test_one_face_restored_and_the_rest_untouched(restorer):
    img = data.astronaut()
    result = restorer.restore(img)
    assert result.num_detected == 1 and result.num_restored == 1
    assert result.image.shape == img.shape and result.image.dtype == np.uint8
    assert result.cropped_faces.shape == (1, 64, 64, 3) and result.restored_faces.shape == (1, 64, 64, 3)
    mask = changed(result.image, img)
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = result.faces[0].box
    # the change sits on the face and covers a good part of it
    assert mask.sum() > 0.3 * (x2 - x1) * (y2 - y1)
    assert xs.min() > x1 - (x2 - x1) and xs.max() < x2 + (x2 - x1)
    assert ys.min() > y1 - (y2 - y1) and ys.max() < y2 + (y2 - y1)
    assert not mask[400:].any() and not mask[:, 400:].any()  # the suit and the shuttle are bit-identical


def test_six_faces_and_face_choice(tiny_checkpoint):
    img = t1_photo()
    everyone = FaceRestorer(tiny_checkpoint, detector="embedded").restore(img)
    assert everyone.num_detected == 6 and everyone.num_restored == 6
    centres = [(f.box[0] + f.box[2]) / 2 for f in everyone.faces]
    assert centres == sorted(centres)  # reading order: left to right

    largest = FaceRestorer(tiny_checkpoint, detector="embedded", select="largest").restore(img)
    assert largest.num_restored == 1
    assert largest.faces[0].area == max(f.area for f in everyone.faces)

    picked = FaceRestorer(tiny_checkpoint, detector="embedded", select="indices", indices=[0, 5]).restore(img)
    assert [f.box.tolist() for f in picked.faces] == [everyone.faces[0].box.tolist(), everyone.faces[5].box.tolist()]
    # only those two faces changed
    mask = changed(picked.image, img)
    for i, face in enumerate(everyone.faces):
        x1, y1, x2, y2 = face.box.astype(int)
        assert mask[y1:y2, x1:x2].any() == (i in (0, 5))

    h, w = img.shape[:2]
    centre = FaceRestorer(tiny_checkpoint, detector="embedded", select="center").restore(img)
    dist = [((f.box[0] + f.box[2]) / 2 - w / 2) ** 2 + ((f.box[1] + f.box[3]) / 2 - h / 2) ** 2
            for f in everyone.faces]
    assert centre.faces[0].box.tolist() == everyone.faces[int(np.argmin(dist))].box.tolist()

    capped = FaceRestorer(tiny_checkpoint, detector="embedded", max_faces=2).restore(img)
    assert capped.num_restored == 2

    with pytest.raises(FaceSelectionError, match="face index 6 is out of range: 6 faces"):
        FaceRestorer(tiny_checkpoint, detector="embedded", select="indices", indices=[6]).restore(img)


def test_visibility_zero_returns_the_original(tiny_checkpoint):
    img = data.astronaut()
    result = FaceRestorer(tiny_checkpoint, detector="embedded", visibility=0).restore(img)
    assert np.array_equal(result.image, img)
    half = FaceRestorer(tiny_checkpoint, detector="embedded", visibility=0.5).restore(img)
    full = FaceRestorer(tiny_checkpoint, detector="embedded", visibility=1).restore(img)
    d_half = np.abs(half.image.astype(int) - img).sum()
    d_full = np.abs(full.image.astype(int) - img).sum()
    assert 0.4 < d_half / d_full < 0.6


def test_upscale_keeps_the_background_a_plain_lanczos_resize(tiny_checkpoint):
    img = data.astronaut()
    result = FaceRestorer(tiny_checkpoint, detector="embedded", upscale=2).restore(img)
    assert result.image.shape == (1024, 1024, 3)
    lanczos = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_LANCZOS4)
    assert np.array_equal(result.image[800:], lanczos[800:])


def test_results_over_the_output_limit_are_refused_before_any_work(tiny_checkpoint):
    restorer = FaceRestorer(tiny_checkpoint, detector="embedded", upscale=4, max_output_pixels=3_000_000)
    stages = []
    with pytest.raises(InvalidImageError, match=r"the result would be 2048x2048, 4 megapixels, over the output "
                                                r"limit of 3; use an upscale of at most 3.38"):
        restorer.restore(data.astronaut(), on_progress=lambda stage, _done: stages.append(stage))
    assert stages == []  # refused before detection, let alone the background
    with pytest.raises(InvalidImageError, match="use a smaller image"):
        restorer.restore(np.zeros((2000, 1600, 3), np.uint8))  # over the limit even at upscale 1
    assert restorer.restore(data.astronaut()[:400, :400]).image.shape == (1600, 1600, 3)


def test_bad_limits_and_thresholds_fail_before_models_load(tmp_path):
    missing = tmp_path / "missing.pth"  # loading it would raise WeightsNotFoundError
    with pytest.raises(ValueError, match="^threshold must be above 0 and at most 1, got -5 .*face probability"):
        FaceRestorer(missing, score_threshold=-5)
    with pytest.raises(ValueError, match="max_output_pixels must be a positive number of pixels, got 0"):
        FaceRestorer(missing, max_output_pixels=0)


def test_no_face_is_not_an_error(restorer):
    coins = data.coins()  # greyscale, no face
    result = restorer.restore(coins)
    assert result.num_detected == 0 and result.num_restored == 0
    assert np.array_equal(result.image, coins)


def test_modes_come_back_as_they_went_in(restorer):
    img = data.astronaut()
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    out = restorer.restore(grey).image
    assert out.shape == grey.shape and out.dtype == np.uint8

    alpha = np.tile(np.linspace(0, 255, 512, dtype=np.uint8), (512, 1))
    rgba = np.dstack([img, alpha])
    out = restorer.restore(rgba).image
    assert out.shape == (512, 512, 4) and np.array_equal(out[..., 3], alpha)

    deep = img.astype(np.uint16) * 257 + 100  # 16-bit values an 8-bit round trip cannot keep
    result = restorer.restore(deep)
    assert result.image.dtype == np.uint16 and result.num_restored == 1
    untouched = ~changed(result.image, deep)
    assert untouched.mean() > 0.8 and np.array_equal(result.image[untouched], deep[untouched])


def test_aligned_mode_restores_the_whole_crop(restorer):
    crop = cv2.resize(data.astronaut()[20:220, 120:320], (64, 64))
    result = restorer.restore(crop, aligned=True)
    assert result.num_restored == 1 and result.image.shape == (64, 64, 3)
    assert changed(result.image, crop).mean() > 0.5


def test_files_in_odd_modes_are_read(tmp_path):
    img = data.astronaut()
    Image.fromarray(img).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert read_picture(tmp_path / "cmyk.jpg").rgb.shape == (512, 512, 3)
    write_image(tmp_path / "deep.png", img.astype(np.uint16) * 257)
    pic = read_picture(tmp_path / "deep.png")
    assert pic.rgb.dtype == np.uint16 and np.array_equal(pic.rgb, img.astype(np.uint16) * 257)
    with pytest.raises(InvalidImageError, match="megapixels, over the limit"):
        read_picture(tmp_path / "deep.png", max_pixels=100_000)


@pytest.mark.parametrize("mask", ["ellipse", "box"])
def test_mask_modes_and_colour_matching(tiny_checkpoint, mask):
    img = data.astronaut()
    plain = FaceRestorer(tiny_checkpoint, detector="embedded", mask=mask).restore(img)
    matched = FaceRestorer(tiny_checkpoint, detector="embedded", mask=mask, colour_match=True).restore(img)
    assert plain.masks.shape == (1, 64, 64) and 0 <= plain.masks.min() and plain.masks.max() <= 1
    region = changed(plain.image, img)
    # colour matching pulls the pasted face's mean colour towards the original's
    before = np.abs(plain.image[region].mean(0) - img[region].mean(0)).sum()
    after = np.abs(matched.image[region].mean(0) - img[region].mean(0)).sum()
    assert after < before / 2


@pytest.mark.heavy
def test_parsing_mask_with_a_registry_parser(model_folder, tiny_checkpoint):
    """ParseNet found in a model folder (seeded random weights in the official layout)."""
    model_folder("parsenet", key="params")
    # seeded random weights: not the published file, so its SHA-256 cannot match
    result = FaceRestorer(tiny_checkpoint, detector="embedded", mask="parsing",
                          allow_unverified=True).restore(data.astronaut())
    assert result.num_restored == 1 and result.masks.shape == (1, 64, 64)
    assert 0 <= result.masks.min() and result.masks.max() <= 1
    assert not changed(result.image, data.astronaut())[400:].any()


def test_real_esrgan_background(model_folder, tiny_checkpoint):
    """A Real-ESRGAN background (seeded random weights from a model folder) replaces Lanczos: away
    from the face the output is the upsampler's, and the face is pasted on top."""
    from gfp_core.background import load_background_upsampler

    model_folder("realesr_general_x4v3", key="params")
    img = data.astronaut()
    # seeded random weights: not the published file, so its SHA-256 cannot match
    result = FaceRestorer(tiny_checkpoint, detector="embedded", upscale=2, background="realesr_general_x4v3",
                          background_tile=200, allow_unverified=True).restore(img)
    expected = load_background_upsampler("realesr_general_x4v3", tile=200, allow_unverified=True).upsample(img, 2)
    assert result.image.shape == (1024, 1024, 3) and result.num_restored == 1
    assert np.array_equal(result.image[800:], expected[800:])
    lanczos = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_LANCZOS4)
    assert not np.array_equal(result.image[800:], lanczos[800:])
