"""Alignment, masks, paste-back and colour matching, checked against facexlib's FaceRestoreHelper (the
official GFPGAN helper) and against what a user would see on a real photo (skimage's astronaut)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from gfp_core.errors import GFPError
from gfp_core.face import Face
from gfp_core.face import paste as paste_module
from gfp_core.face.align import (BORDER_RGB, affine_scale, align_faces, estimate_alignment, face_template,
                                 inverse_alignment, transform_points, warp_face)
from gfp_core.face.colour import match_colour
from gfp_core.errors import InvalidOptionError
from gfp_core.face.masks import (BISENET_LABELS, DEFAULT_PARSE_SIZE, FACE_CLASSES, PARSE_LABELS, box_mask,
                                 ellipse_mask, face_masks, parse_face, parsing_mask)
from gfp_core.face.paste import face_roi, paste_faces

skimage_data = pytest.importorskip("skimage.data")
helper_module = pytest.importorskip("facexlib.utils.face_restoration_helper")

#: the astronaut's landmarks, placed by eye on a 4× zoom (eyes, nose tip, mouth corners)
ASTRONAUT_LM = np.array([[201.3, 100.5], [247.0, 103.8], [222.5, 127.5], [203.8, 141.3], [244.3, 141.3]])


def _rotated(lm: np.ndarray, degrees: float, scale: float = 1.0, shift=(0.0, 0.0)) -> np.ndarray:
    centre = lm.mean(0)
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) * scale
    return (lm - centre) @ rot.T + centre + np.asarray(shift)


LANDMARK_SETS = {
    "astronaut": ASTRONAUT_LM,
    "tilted": _rotated(ASTRONAUT_LM, 17.0, 1.3),
    "small_far": _rotated(ASTRONAUT_LM, -8.0, 0.45, (180.0, 250.0)),
    "near_border": ASTRONAUT_LM - [195.0, 70.0],       # the crop reaches past the top-left corner
    "one_outlier": ASTRONAUT_LM + [[0, 0], [0, 0], [9.0, -6.0], [0, 0], [0, 0]],  # LMEDS ignores it
}


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()  # RGB uint8, 512×512, public domain


def _official_helper(image_rgb: np.ndarray, landmarks: list[np.ndarray], upscale: float = 1, face_size: int = 512):
    """A real FaceRestoreHelper without its constructor (which would download detection weights):
    only the attributes align_warp_face / get_inverse_affine / paste_faces_to_input_image read."""
    helper = helper_module.FaceRestoreHelper.__new__(helper_module.FaceRestoreHelper)
    helper.face_size = (face_size, face_size)
    helper.face_template = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                                     [201.26117, 371.41043], [313.08905, 371.15118]]) * (face_size / 512.0)
    helper.template_3points = False
    helper.pad_blur = False
    helper.upscale_factor = upscale
    helper.input_img = np.ascontiguousarray(image_rgb[:, :, ::-1])  # facexlib works in BGR
    helper.all_landmarks_5 = [np.array(lm) for lm in landmarks]
    helper.det_faces, helper.affine_matrices, helper.inverse_affine_matrices = [], [], []
    helper.cropped_faces, helper.restored_faces, helper.pad_input_imgs = [], [], []
    helper.use_parse = False
    helper.device = torch.device("cpu")
    return helper


def _face(lm: np.ndarray) -> Face:
    lm = np.asarray(lm, dtype=np.float32)
    return Face(np.concatenate([lm.min(0), lm.max(0)]).astype(np.float32), lm, 0.99)


def _restored_like(crop: np.ndarray) -> np.ndarray:
    """A plausible 'restored' face: sharper and a little brighter than the crop."""
    blur = cv2.GaussianBlur(crop, (0, 0), 2.0).astype(np.float32)
    sharp = crop.astype(np.float32) * 1.6 - blur * 0.6 + 8.0
    return np.clip(np.rint(sharp), 0, 255).astype(np.uint8)


def _reference_paste(background, crop, inverse_affine, mask, visibility=1.0):
    """The same blend done over the whole image (the slow way), to check the rectangle-only paste."""
    h, w = background.shape[:2]
    face = cv2.warpAffine(crop, inverse_affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(mask.astype(np.float32), inverse_affine, (w, h), flags=cv2.INTER_LINEAR) * visibility
    base = background.astype(np.float32)
    return np.clip(np.rint(base + alpha[..., None] * (face.astype(np.float32) - base)), 0, 255).astype(np.uint8)


# --- alignment vs the official helper ----------------------------------------------------------

@pytest.mark.parametrize("face_size", [512, 256])
def test_alignment_matches_official_helper(astronaut, face_size):
    names = list(LANDMARK_SETS)
    helper = _official_helper(astronaut, [LANDMARK_SETS[n] for n in names], face_size=face_size)
    helper.align_warp_face()
    np.testing.assert_allclose(face_template(face_size), helper.face_template, atol=1e-9)
    crops, affines = align_faces(astronaut, [_face(LANDMARK_SETS[n]) for n in names], face_size)
    assert crops.shape == (len(names), face_size, face_size, 3) and crops.dtype == np.uint8
    for i, name in enumerate(names):
        assert np.abs(affines[i] - helper.affine_matrices[i]).max() <= 1e-4, name
        official_rgb = helper.cropped_faces[i][:, :, ::-1].astype(int)
        assert np.abs(crops[i].astype(int) - official_rgb).max() <= 1, name
    # where the crop leaves the image it is the official grey (BGR 135,133,132 → RGB 132,133,135)
    near = crops[names.index("near_border")]
    assert tuple(near[0, 0]) == BORDER_RGB
    for upscale in (1, 2):
        helper.upscale_factor = upscale
        helper.inverse_affine_matrices = []
        helper.get_inverse_affine()
        for i, name in enumerate(names):
            ours = inverse_alignment(affines[i], upscale, offset="none")
            assert np.abs(ours - helper.inverse_affine_matrices[i]).max() <= 1e-4, (name, upscale)


def test_float_image_aligns_like_uint8(astronaut):
    affine = estimate_alignment(ASTRONAUT_LM)
    as_uint8 = warp_face(astronaut, affine)
    as_float = warp_face(astronaut.astype(np.float32) / 255.0, affine)
    assert as_float.dtype == np.float32
    assert np.abs(as_float * 255.0 - as_uint8).max() <= 0.51
    crops, affines = align_faces(astronaut, [])
    assert crops.shape == (0, 512, 512, 3) and affines.shape == (0, 2, 3)


@pytest.mark.parametrize("upscale", [1, 2])
def test_box_paste_matches_official(astronaut, upscale):
    """The whole non-parsing paste next to the official one, with a realistic restored face."""
    lms = [LANDMARK_SETS["astronaut"], LANDMARK_SETS["small_far"]]
    helper = _official_helper(astronaut, lms, upscale=upscale)
    helper.align_warp_face()
    helper.get_inverse_affine()
    restored = [_restored_like(c[:, :, ::-1]) for c in helper.cropped_faces]  # RGB
    helper.restored_faces = [np.ascontiguousarray(r[:, :, ::-1]) for r in restored]
    official = helper.paste_faces_to_input_image()[:, :, ::-1].astype(int)

    affines = [estimate_alignment(lm) for lm in lms]
    inverses = np.stack([inverse_alignment(a, upscale, offset="official") for a in affines])
    for ours_inv, official_inv in zip(inverses, helper.inverse_affine_matrices):  # paste added its offset
        assert np.abs(ours_inv - official_inv).max() <= 1e-4
    background = cv2.resize(astronaut, (512 * upscale, 512 * upscale), interpolation=cv2.INTER_LANCZOS4)
    ours = paste_faces(background, np.stack(restored), inverses, None, upscale=upscale).astype(int)
    diff = np.abs(ours - official)
    # the official box mask sits 1 output pixel right/down of ours (even erosion kernels) and the
    # official result is truncated, not rounded: small differences on the feathered edge only
    assert diff.mean() <= 0.15, diff.mean()
    assert np.percentile(diff, 99.9) <= 6, np.percentile(diff, 99.9)
    assert diff.max() <= 20, diff.max()


class _StubParser(torch.nn.Module):
    """Stands in for a parsing network: records its input, answers a fixed label map's one-hot logits."""

    def __init__(self, labels: np.ndarray):
        super().__init__()
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x):
        self.inputs.append(x.clone())
        logits = torch.nn.functional.one_hot(self.labels, 19).permute(2, 0, 1).float()[None]
        return logits.expand(x.shape[0], -1, -1, -1), None


def _synthetic_labels(size: int = 512, order=PARSE_LABELS) -> np.ndarray:
    """Background, hair cap, skin oval with eyes/nose/mouth, neck and cloth below (named classes)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    lab = np.full((size, size), order.index("background"), np.uint8)
    lab[((xx - 0.5) / 0.36) ** 2 + ((yy - 0.40) / 0.36) ** 2 < 1] = order.index("hair")
    lab[(yy > 0.7) & (np.abs(xx - 0.5) < 0.14)] = order.index("neck")
    lab[yy > 0.9] = order.index("cloth")
    lab[((xx - 0.5) / 0.27) ** 2 + ((yy - 0.5) / 0.3) ** 2 < 1] = order.index("skin")
    for cx, name in ((0.38, "l_eye"), (0.62, "r_eye")):
        lab[((xx - cx) / 0.05) ** 2 + ((yy - 0.47) / 0.02) ** 2 < 1] = order.index(name)
    lab[(np.abs(xx - 0.5) < 0.03) & (yy > 0.5) & (yy < 0.62)] = order.index("nose")
    lab[(np.abs(xx - 0.5) < 0.1) & (np.abs(yy - 0.72) < 0.02)] = order.index("u_lip")
    return lab


def test_parsing_paste_matches_official(astronaut):
    """The official parse branch (use_parse=True) and ours, given the same parser answers."""
    labels = _synthetic_labels()
    helper = _official_helper(astronaut, [ASTRONAUT_LM], upscale=1)
    helper.align_warp_face()
    helper.get_inverse_affine()
    restored = _restored_like(helper.cropped_faces[0][:, :, ::-1])
    helper.restored_faces = [np.ascontiguousarray(restored[:, :, ::-1])]
    helper.use_parse = True
    helper.face_parse = _StubParser(labels)
    official = helper.paste_faces_to_input_image()[:, :, ::-1].astype(int)

    ours_parser = _StubParser(labels)
    got = parse_face(ours_parser, restored, kind="parsenet")
    np.testing.assert_array_equal(got, labels)
    # the network sees the same input as in the official code
    assert torch.allclose(ours_parser.inputs[0], helper.face_parse.inputs[0], atol=1e-6)
    mask = parsing_mask(got, 512)
    inverse = inverse_alignment(estimate_alignment(ASTRONAUT_LM), 1)
    ours = paste_faces(astronaut, restored, inverse, mask).astype(int)
    diff = np.abs(ours - official)
    # official truncates to uint8 where we round; warping only the face's rectangle moves OpenCV's
    # fixed-point sample positions by a rounding step, which changes a handful of pixels by one more
    assert diff.max() <= 2 and np.count_nonzero(diff > 1) <= 20, (diff.max(), np.count_nonzero(diff > 1))


# --- geometry on a real photo ------------------------------------------------------------------

@pytest.mark.parametrize("mask_kind", ["box", "ellipse"])
def test_round_trip_reproduces_the_photo(astronaut, mask_kind):
    crops, affines = align_faces(astronaut, [_face(ASTRONAUT_LM)])
    inverse = inverse_alignment(affines[0], 1)
    if mask_kind == "box":
        mask = box_mask(512, affine_scale(inverse))
    else:
        mask = ellipse_mask(transform_points(ASTRONAUT_LM, affines[0]))
    out = paste_faces(astronaut, crops, inverse[None], mask)
    footprint = cv2.warpAffine(mask, inverse, (512, 512))
    inside = footprint > 0.5
    assert inside.sum() > 3000  # the face really is covered
    mae = np.abs(out.astype(float) - astronaut)[inside].mean() / 255
    assert mae <= 2 / 255, mae * 255
    outside = footprint == 0
    np.testing.assert_array_equal(out[outside], astronaut[outside])
    # only pixels inside the footprint may change at all
    assert not (out != astronaut).any(-1)[outside].any()


def test_round_trip_upscaled_matches_resized_photo(astronaut):
    upscale = 2
    background = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LANCZOS4)
    crops, affines = align_faces(astronaut, [_face(ASTRONAUT_LM)])
    errors = {}
    for offset in ("centre", "official"):
        inverse = inverse_alignment(affines[0], upscale, offset=offset)
        mask = box_mask(512, affine_scale(inverse), upscale)
        out = paste_faces(background, crops, inverse[None], mask)
        footprint = cv2.warpAffine(mask, inverse, (1024, 1024))
        inside = footprint > 0.5
        errors[offset] = np.abs(out.astype(float) - background)[inside].mean()
        np.testing.assert_array_equal(out[footprint == 0], background[footprint == 0])
    # the crop is an upsampled, resampled copy: a blur of about a grey level is expected
    assert errors["centre"] <= 2.5, errors
    # the official half-pixel offset lands the face off the resized background's pixel grid
    assert errors["centre"] < errors["official"], errors


def test_visibility(astronaut):
    crops, affines = align_faces(astronaut, [_face(ASTRONAUT_LM)])
    restored = 255 - crops  # as different as possible from the original
    inverse = inverse_alignment(affines[0], 1)[None]
    mask = box_mask(512, affine_scale(inverse[0]))
    zero = paste_faces(astronaut, restored, inverse, mask, visibility=0.0)
    np.testing.assert_array_equal(zero, astronaut)
    full = paste_faces(astronaut, restored, inverse, mask, visibility=1.0).astype(float)
    half = paste_faces(astronaut, restored, inverse, mask, visibility=0.5).astype(float)
    assert np.abs(half - (astronaut + full) / 2).max() <= 1.0
    assert np.abs(full - astronaut).max() > 200  # the restored face is really there
    rgba = np.dstack([astronaut, np.full((512, 512), 77, np.uint8)])  # alpha is carried, never blended
    half_rgba = paste_faces(rgba, restored, inverse, mask, visibility=0.5)
    np.testing.assert_array_equal(half_rgba[..., :3], half)
    assert (half_rgba[..., 3] == 77).all()
    with pytest.raises(GFPError):
        paste_faces(astronaut, restored, inverse, mask, visibility=1.5)


def test_overlapping_faces_later_on_top(astronaut):
    lm_a, lm_b = ASTRONAUT_LM, ASTRONAUT_LM + [25.0, 10.0]
    affines = [estimate_alignment(lm) for lm in (lm_a, lm_b)]
    inverses = np.stack([inverse_alignment(a, 1) for a in affines])
    red = np.zeros((512, 512, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((512, 512, 3), np.uint8)
    blue[..., 2] = 255
    masks = [box_mask(512, affine_scale(i)) for i in inverses]
    out = paste_faces(astronaut, np.stack([red, blue]), inverses, masks)
    foot = [cv2.warpAffine(m, i, (512, 512)) for m, i in zip(masks, inverses)]
    both = (foot[0] > 0.999) & (foot[1] > 0.999)
    only_a = (foot[0] > 0.999) & (foot[1] == 0)
    assert both.sum() > 1000 and only_a.sum() > 100
    assert (out[both] == [0, 0, 255]).all()     # the later face wins where both are opaque
    assert (out[only_a] == [255, 0, 0]).all()
    # the same as pasting one after the other
    one_by_one = paste_faces(paste_faces(astronaut, red, inverses[0], masks[0]), blue, inverses[1], masks[1])
    np.testing.assert_array_equal(out, one_by_one)


@pytest.mark.parametrize("shift", [(-195.0, -70.0), (260.0, 330.0), (900.0, 0.0)])
def test_face_at_or_past_the_border(astronaut, shift):
    lm = ASTRONAUT_LM + np.asarray(shift)
    crops, affines = align_faces(astronaut, [_face(lm)])
    inverse = inverse_alignment(affines[0], 1)
    restored = _restored_like(crops[0])
    mask = box_mask(512, affine_scale(inverse))
    out = paste_faces(astronaut, restored, inverse, mask)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    reference = _reference_paste(astronaut, restored, inverse, mask)
    assert np.abs(out.astype(int) - reference).max() <= 1
    if shift[0] >= 900:  # wholly outside: nothing to paste
        np.testing.assert_array_equal(out, astronaut)
        assert face_roi(mask, inverse, 512, 512) is None
    else:
        assert (out != astronaut).any()


def test_paste_touches_only_the_face_rectangle(astronaut, monkeypatch):
    """A small face in a big image: every warp is the size of the face's footprint, not of the image."""
    big = cv2.resize(astronaut, (3000, 2400), interpolation=cv2.INTER_LINEAR)
    lm = ASTRONAUT_LM * 0.5 + [2000.0, 1500.0]
    crops, affines = align_faces(big, [_face(lm)])
    inverse = inverse_alignment(affines[0], 1)
    mask = box_mask(512, affine_scale(inverse))
    sizes = []
    real_warp = cv2.warpAffine

    def recording_warp(src, m, dsize, *args, **kwargs):
        sizes.append(tuple(dsize))
        return real_warp(src, m, dsize, *args, **kwargs)

    monkeypatch.setattr(paste_module.cv2, "warpAffine", recording_warp)
    out = paste_faces(big, crops, inverse[None], mask)
    monkeypatch.undo()
    side = 512 * affine_scale(inverse)  # the crop's side in output pixels
    assert sizes and all(w * h <= (side * 1.2 + 8) ** 2 for w, h in sizes), (sizes, side)
    reference = _reference_paste(big, crops[0], inverse, mask)
    assert np.abs(out.astype(int) - reference).max() <= 1


def test_float_images_paste_like_uint8(astronaut):
    crops, affines = align_faces(astronaut, [_face(ASTRONAUT_LM)])
    restored = _restored_like(crops[0])
    inverse = inverse_alignment(affines[0], 1)
    mask = box_mask(512, affine_scale(inverse))
    as_uint8 = paste_faces(astronaut, restored, inverse, mask, 0.7)
    as_float = paste_faces(astronaut.astype(np.float32) / 255, restored.astype(np.float32) / 255, inverse, mask, 0.7)
    assert as_float.dtype == np.float32 and 0.0 <= as_float.min() and as_float.max() <= 1.0
    assert np.abs(as_float * 255 - as_uint8).max() <= 1.0
    mixed = paste_faces(astronaut, restored.astype(np.float32) / 255, inverse, mask, 0.7)
    assert mixed.dtype == np.uint8 and np.abs(mixed.astype(int) - as_uint8).max() <= 1


# --- masks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale,upscale", [(1.0, 1), (0.33, 1), (0.66, 2), (2.5, 2)])
def test_box_mask_symmetric_and_feathered(scale, upscale):
    mask = box_mask(512, scale, upscale)
    assert mask.dtype == np.float32 and mask.shape == (512, 512)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    np.testing.assert_allclose(mask, mask.T, atol=1e-6)
    np.testing.assert_allclose(mask, mask[::-1, ::-1], atol=1e-6)
    assert mask[256, 256] == pytest.approx(1.0) and mask[0, 256] < 1e-3 and mask[0, 0] < 1e-6
    row = mask[256, :256]
    assert np.all(np.diff(row) >= -1e-7)                    # rises monotonically towards the centre
    feather = np.count_nonzero((row > 0.02) & (row < 0.98))
    assert feather >= 5                                      # a soft edge, not a hard step
    # the official feather is sized by the face: the half-way point sits about S/20 inside
    half = np.argmax(row >= 0.5)
    assert 512 / 20 - 4 <= half <= 512 / 20 + 6, half


def test_ellipse_mask_covers_the_face():
    template = face_template(512)
    mask = ellipse_mask(template)
    assert mask.dtype == np.float32 and mask.min() >= 0.0 and mask.max() <= 1.0
    for x, y in template:
        assert mask[int(round(y)), int(round(x))] >= 0.99
    eyes, mouth = template[:2].mean(0), template[3:].mean(0)
    brow = eyes - [0, 0.35 * (mouth - eyes)[1]]
    chin = mouth + [0, 0.6 * (mouth - eyes)[1]]
    assert mask[int(brow[1]), int(brow[0])] >= 0.99
    assert mask[int(chin[1]), int(chin[0])] >= 0.5
    assert mask[0, 0] == 0.0 and mask[:, 0].max() == 0.0 and mask[5, 256] == 0.0
    assert np.count_nonzero((mask > 0.05) & (mask < 0.95)) > 2000  # feathered
    # it follows a tilted face
    tilted = transform_points(template, cv2.getRotationMatrix2D((256, 300), 20, 1.0))
    mask_t = ellipse_mask(tilted)
    for x, y in tilted:
        assert mask_t[int(round(y)), int(round(x))] >= 0.99


def test_parsing_mask_from_label_map():
    labels = _synthetic_labels()
    mask = parsing_mask(labels)
    assert mask.dtype == np.float32 and mask.shape == (512, 512)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    skin = PARSE_LABELS.index("skin")
    assert mask[330, 200] > 0.99 and labels[330, 200] == skin       # cheek
    assert mask[240, 195] > 0.99 and labels[240, 195] == PARSE_LABELS.index("l_eye")
    assert mask[100, 256] > 0.99 and labels[100, 256] == PARSE_LABELS.index("hair")  # kept, as official
    assert mask[440, 256] < 0.2 and labels[440, 256] == PARSE_LABELS.index("neck")   # dropped
    assert mask[500, 100] < 0.01 and mask[490, 256] < 0.1           # cloth
    assert mask[:10].max() == 0 and mask[:, -10:].max() == 0        # official cleared border
    assert 0.1 < mask[205, 72] < 0.9                                 # feathered edge (hair/background)
    small = parsing_mask(labels, face_size=256)
    assert small.shape == (256, 256) and np.abs(small - mask[::2, ::2]).max() < 0.05
    assert set(FACE_CLASSES) == set(range(1, 14)) | {15}
    # a 256-pixel label map gets the same mask (blur and border scale with it)
    half = parsing_mask(labels[::2, ::2])
    assert np.abs(half - mask[::2, ::2]).mean() < 0.01


def test_parse_face_bisenet_labels_are_renumbered():
    bise_labels = _synthetic_labels(order=BISENET_LABELS)
    got = parse_face(_StubParser(bise_labels), np.zeros((64, 64, 3), np.uint8), kind="bisenet")
    np.testing.assert_array_equal(got, _synthetic_labels(order=PARSE_LABELS))


def test_parse_face_with_random_networks():
    from gfp_core.weights import build_architecture

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    crops = (rng.random((2, 128, 128, 3)) * 255).astype(np.uint8)
    parsenet = build_architecture("ParseNet", {"in_size": 512, "out_size": 512, "parsing_ch": 19, "base_ch": 8,
                                               "min_feat_size": 256, "res_depth": 1, "ch_range": [8, 16]}).eval()
    bisenet = build_architecture("BiSeNet", {"num_class": 19}).eval()
    for model in (parsenet, bisenet):
        single = parse_face(model, crops[0])
        assert single.shape == (512, 512) and single.dtype == np.uint8 and single.max() < 19
        batch = parse_face(model, crops.astype(np.float32) / 255.0, batch_size=1)
        assert batch.shape == (2, 512, 512)
        assert np.mean(batch[0] == single) > 0.99
        assert parsing_mask(single, 512).shape == (512, 512)


class ParseNet(_StubParser):
    """The stub under the class name ``parse_face`` knows, as the engine's masks get no parser kind."""


def _parsing_paste(photo: np.ndarray, restored: np.ndarray, inverse: np.ndarray, parser, parse_size: int) -> np.ndarray:
    mask = face_masks("parsing", [], np.zeros((1, 2, 3)), restored[None], face_size=512, parser=parser,
                      parse_size=parse_size)
    return paste_faces(photo, restored, inverse, mask[0]).astype(int)


def test_default_parse_size_pastes_what_full_size_parsing_pastes(astronaut):
    """On a real photo, parsing at the default size changes the pasted face by less than a grey level
    on average and a few at most, against the official 512² parse. The stand-in parser answers the same
    face-shaped labels at every size, as a trained parser does (random weights give a texture that
    changes with the scale, which would say nothing about the resolution)."""
    assert DEFAULT_PARSE_SIZE < 512
    crops, affines = align_faces(astronaut, [_face(ASTRONAUT_LM)])
    restored = _restored_like(crops[0])
    inverse = inverse_alignment(affines[0], 1)
    parser = ParseNet(_synthetic_labels())
    full = _parsing_paste(astronaut, restored, inverse, parser, 512)
    small = _parsing_paste(astronaut, restored, inverse, parser, DEFAULT_PARSE_SIZE)
    assert [x.shape[-1] for x in parser.inputs] == [512, DEFAULT_PARSE_SIZE]  # it did parse a smaller crop
    face = cv2.warpAffine(np.ones((512, 512), np.float32), inverse, astronaut.shape[1::-1]) > 0
    diff = np.abs(small - full)
    assert diff.max() > 0  # the masks do differ
    assert diff[face].mean() < 1.0, diff[face].mean()
    assert diff.max() <= 4, diff.max()


def test_parse_size_range():
    parser = ParseNet(_synthetic_labels())
    crop = np.zeros((512, 512, 3), np.uint8)
    assert parse_face(parser, crop, size=128).shape == (128, 128)
    assert face_masks("parsing", [], np.zeros((1, 2, 3)), crop[None], face_size=512, parser=parser).shape == (1, 512, 512)
    assert parser.inputs[-1].shape[-1] == DEFAULT_PARSE_SIZE  # the engine's masks use the default
    for bad in (32, 1024, 200.5, "256"):
        with pytest.raises(InvalidOptionError, match="parse_size"):
            face_masks("parsing", [], np.zeros((1, 2, 3)), crop[None], face_size=512, parser=parser, parse_size=bad)


# --- colour -------------------------------------------------------------------------------------

def test_match_colour_restores_the_mean_colour(astronaut):
    crops, affines = align_faces(astronaut, [_face(ASTRONAUT_LM)])
    original = crops[0]
    shifted = np.clip(original.astype(np.float32) * [0.8, 1.05, 1.25] + [0, 10, 25], 0, 255).astype(np.uint8)
    mask = ellipse_mask(transform_points(ASTRONAUT_LM, affines[0]))
    inside = mask > 0.5

    def mean_colour(img):
        return img[inside].astype(float).mean(0)

    before = np.abs(mean_colour(shifted) - mean_colour(original)).max()
    matched = match_colour(shifted, original, mask)
    after = np.abs(mean_colour(matched) - mean_colour(original)).max()
    assert matched.dtype == np.uint8 and matched.shape == original.shape
    assert before > 15 and after <= 2.0, (before, after)
    as_float = match_colour(shifted.astype(np.float32) / 255, original.astype(np.float32) / 255, mask)
    assert as_float.dtype == np.float32 and np.abs(as_float * 255 - matched).max() <= 1.0
    np.testing.assert_array_equal(match_colour(shifted, original, mask, strength=0.0), shifted)
