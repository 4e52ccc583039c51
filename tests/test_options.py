"""One option and error policy: every choice and range is defined once in gfp_core.options; the CLI,
the web page and the library offer exactly those; a bad option is an InvalidOptionError that carries
its canonical setting, and each front end names it in its own words (the CLI its flag, the page its
control's label, the library the canonical name), while no library message names a flag."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

from gfp_core import options
from gfp_core.errors import FaceSelectionError, GFPError, InvalidImageError, InvalidOptionError

#: (canonical setting, a bad value, FaceRestorer/EngineOptions keyword, CLI flag)
BAD = [
    ("threshold", -5, "score_threshold", "--threshold"),
    ("fidelity", 1.5, "fidelity", "--fidelity"),
    ("visibility", -0.5, "visibility", "--visibility"),
    ("upscale", 9, "upscale", "--upscale"),
    ("mask", "blob", "mask", "--mask"),
    ("select", "tallest", "select", "--select"),
    ("device", "gpu7", "device", "--device"),
    ("dtype", "fp8", "dtype", "--dtype"),
    ("detector", "yolo", "detector", "--detector"),
    ("parser", "segformer", "parser", "--parser"),
    ("background", "bicubic", "background", "--bg-upsampler"),
    ("max_faces", 0, "max_faces", "--max-faces"),
    ("max_pixels", 0, "max_pixels", "--max-pixels"),
    ("max_output_pixels", 0, "max_output_pixels", "--max-output-pixels"),
    ("smoothing", 1.5, "smoothing", "--smoothing"),
    ("steady", -0.2, "steady", "--steady"),
]


def _library_error(keyword: str, value) -> InvalidOptionError:
    """What FaceRestorer raises for one bad keyword (before any model is loaded: the file is missing)."""
    from gfp_core.pipeline import FaceRestorer

    with pytest.raises(InvalidOptionError) as caught:
        FaceRestorer("/nonexistent/weights.pth", **{keyword: value})
    return caught.value


# --- one definition ---------------------------------------------------------------------------------

def test_existing_constants_are_the_options_lists():
    from gfp_core.device import DTYPE_NAMES
    from gfp_core.face.detection import DETECTOR_NAMES
    from gfp_core.face.masks import MASK_MODES
    from gfp_core.face.select import SELECTIONS

    assert MASK_MODES == options.MASKS.names == ("box", "ellipse", "parsing")
    assert SELECTIONS == options.SELECTS.names == ("all", "largest", "center", "indices")
    assert DETECTOR_NAMES == options.DETECTORS.names
    assert DTYPE_NAMES == options.DTYPES.names == ("fp32", "fp16", "bf16")
    assert options.PARSERS.names == ("parsenet", "bisenet")
    assert options.DEVICES.names == ("auto", "cpu", "cuda", "mps")


def test_backgrounds_are_lanczos_and_the_registry_s_background_models():
    from gfp_core.weights.registry import MODELS

    assert options.BACKGROUNDS.names == ("lanczos", *(s.name for s in MODELS if s.kind == "background"))


def test_every_choice_has_a_one_line_description_and_every_range_its_bounds():
    for c in (options.SELECTS, options.MASKS, options.PARSERS, options.DETECTORS, options.MODELS, options.DTYPES,
              options.DEVICES, options.BACKGROUNDS):
        assert c.what and len(set(c.names)) == len(c.names)
        for choice in c.items:
            assert choice.description and "\n" not in choice.description, (c.setting, choice)
    assert (options.THRESHOLD.low, options.THRESHOLD.high, options.THRESHOLD.low_open) == (0, 1, True)
    assert options.FIDELITY.bounds == options.VISIBILITY.bounds == (0, 1)
    assert options.UPSCALE.bounds == (1, 8) and options.WEB_UPSCALE.bounds == (1, 4) and options.WEB_UPSCALE.whole
    assert 0.5 in options.THRESHOLD and 1 in options.THRESHOLD and 0 not in options.THRESHOLD
    assert float("nan") not in options.FIDELITY and "1" not in options.FIDELITY


def test_no_front_end_keeps_a_second_list():
    """No literal list or tuple of masks, face choices, detectors, dtypes or parsers outside
    gfp_core/options.py (type annotations aside)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    start = r"""(?<!Literal)[\[(]\s*"""
    patterns = [start + r"""["']box["'],\s*["']ellipse["']""", start + r"""["']all["'],\s*["']largest["']""",
                start + r"""["']retinaface_resnet50["'],\s*["']retinaface_mobile0\.25["']""",
                start + r"""["']fp32["'],\s*["'](fp16|bf16)["']""", start + r"""["']parsenet["'],\s*["']bisenet["']"""]
    offenders = []
    for folder in ("gfp_core", "web"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "options.py":
                continue
            text = path.read_text()
            offenders += [f"{path.relative_to(root)}: {p}" for p in patterns if re.search(p, text)]
    assert not offenders, offenders


# --- the errors -------------------------------------------------------------------------------------

def test_an_option_error_is_a_gfp_error_and_a_value_error_with_its_setting():
    with pytest.raises(InvalidOptionError) as caught:
        options.THRESHOLD.check(-5)
    exc = caught.value
    assert isinstance(exc, GFPError) and isinstance(exc, ValueError)
    assert (exc.setting, exc.value, exc.allowed) == ("threshold", -5, (0, 1))
    assert str(exc).startswith("threshold must be above 0 and at most 1, got -5")
    assert issubclass(FaceSelectionError, InvalidOptionError)
    copy = pickle.loads(pickle.dumps(options.in_words(exc, {"threshold": "Detection threshold"})))
    assert str(copy) == str(exc) and copy.setting == "threshold" and copy.value == -5


def test_in_words_and_speaking_rename_only_the_setting():
    with pytest.raises(InvalidOptionError) as caught:
        with options.speaking({"threshold": "--threshold"}):
            options.THRESHOLD.check(-5)
    assert str(caught.value).startswith("--threshold must be above 0 and at most 1, got -5")
    options.in_words(caught.value, {})  # back to the canonical name
    assert str(caught.value).startswith("threshold must be")
    plain = InvalidOptionError("a message without a setting")
    assert str(options.in_words(plain, {"threshold": "--threshold"})) == "a message without a setting"


def test_size_limits_say_how_to_raise_them_in_each_front_end_s_words(tmp_path, tiny_checkpoint):
    """The CLI names its flag; where the limit is the server's or the pack's (web, nodes), the
    message ends with what the user can do instead."""
    from PIL import Image

    from gfp_core.cli import CLI_WORDS
    from gfp_core.engine import Engine
    from gfp_core.errors import ImageTooLargeError
    from gfp_core.image import read_picture
    from gfp_core.weights import load_model
    from web.engine import MESSAGE_WORDS

    big = tmp_path / "big.png"
    Image.new("RGB", (600, 500)).save(big)
    with pytest.raises(ImageTooLargeError) as read:
        read_picture(big, max_pixels=100_000)
    with pytest.raises(ImageTooLargeError) as output:
        Engine(load_model(tiny_checkpoint, device="cpu"), upscale=4,
               max_output_pixels=1_000_000).check_output_size((300, 400))
    words = {"library": {}, "cli": CLI_WORDS, "web": MESSAGE_WORDS, "nodes": _node_words()}
    expected = {
        "library": ("raise the limit (max_pixels) if you have the memory",
                    "use an upscale of at most 2.88, or raise the limit (max_output_pixels) if you have the memory"),
        "cli": ("raise --max-pixels if you have the memory",
                "use an upscale of at most 2.88, or raise --max-output-pixels if you have the memory"),
        "web": ("use a smaller image", "use an upscale of at most 2.88"),
        "nodes": ("use a smaller image", "use an upscale of at most 2.88"),
    }
    for front_end, (read_tail, output_tail) in expected.items():
        for exc, tail in ((read.value, read_tail), (output.value, output_tail)):
            message = str(options.in_words(exc, words[front_end]))
            assert message.endswith("; " + tail), (front_end, message)
            assert isinstance(exc, InvalidImageError) and isinstance(exc, ValueError)
    copy = pickle.loads(pickle.dumps(output.value))
    assert str(copy) == str(output.value) and copy.setting == "max_output_pixels"


def _node_words() -> dict:
    from helpers import forget_modules, import_pack

    try:
        return dict(import_pack("gfp_words_pack").nodes.messages.NODE_WORDS)
    finally:
        forget_modules("gfp_words_pack")


@pytest.mark.parametrize("setting, value, keyword, flag", BAD, ids=[b[0] for b in BAD])
def test_library_messages_name_the_canonical_setting_and_no_flag(setting, value, keyword, flag):
    exc = _library_error(keyword, value)
    assert exc.setting == setting and exc.value == value
    assert setting in str(exc)
    assert "--" not in str(exc), f"a library message names a command-line flag: {exc}"


def test_engine_options_and_stage_checks_raise_the_same_errors():
    from gfp_core.engine import EngineOptions
    from gfp_core.face.detection import check_score_threshold
    from gfp_core.face.masks import face_masks
    from gfp_core.face.select import select_faces

    for kwargs, setting in [({"fidelity": 2}, "fidelity"), ({"upscale": 0.5}, "upscale"), ({"mask": "x"}, "mask"),
                            ({"feather": -1}, "feather"), ({"face_limit": 0}, "face_limit"),
                            ({"score_threshold": 0}, "threshold"), ({"select": "x"}, "select")]:
        with pytest.raises(InvalidOptionError) as caught:
            EngineOptions(**kwargs)
        assert caught.value.setting == setting
    for call in (lambda: check_score_threshold(1.5), lambda: select_faces([], (10, 10), "x"),
                 lambda: face_masks("x", [], None, None, face_size=512)):
        with pytest.raises(InvalidOptionError):
            call()


def test_device_errors_name_no_flag():
    from gfp_core.device import resolve_device, resolve_dtype

    import torch

    errors = []
    for call in (lambda: resolve_device("gpu7"), lambda: resolve_dtype("fp8"),
                 lambda: resolve_dtype("fp16", torch.device("cpu"))):
        with pytest.raises(InvalidOptionError) as caught:
            call()
        errors.append(caught.value)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidOptionError) as caught:
            resolve_device("cuda")
        errors.append(caught.value)
    for exc in errors:
        assert exc.setting in ("device", "dtype") and "--" not in str(exc), str(exc)


# --- the command line -------------------------------------------------------------------------------

def test_cli_choices_are_the_options():
    from gfp_core.cli import CLI_WORDS, build_parser

    restore = build_parser()._subparsers._group_actions[0].choices["restore"]
    actions = {a.dest: a for a in restore._actions}
    assert tuple(actions["detector"].choices) == options.DETECTORS.names
    assert tuple(actions["select"].choices) == options.SELECTS.names
    assert tuple(actions["mask"].choices) == options.MASKS.names
    assert tuple(actions["parser"].choices) == options.PARSERS.names
    assert tuple(actions["bg_upsampler"].choices) == options.BACKGROUNDS.names
    assert tuple(actions["dtype"].choices) == options.DTYPES.names
    flags = {flag for a in restore._actions for flag in a.option_strings}
    export = build_parser()._subparsers._group_actions[0].choices["export-onnx"]
    flags |= {flag for a in export._actions for flag in a.option_strings}
    assert set(CLI_WORDS.values()) <= flags, set(CLI_WORDS.values()) - flags


CLI_CASES = [("threshold", ["--threshold", "-5"], "--threshold must be above 0 and at most 1, got -5"),
             ("fidelity", ["--fidelity", "1.5"], "--fidelity must be between 0 and 1, got 1.5"),
             ("upscale", ["--upscale", "9"], "--upscale must be between 1 and 8, got 9"),
             ("device", ["--device", "gpu7"], "unknown --device 'gpu7'; use auto, cpu, cuda, cuda:N or mps")]


@pytest.mark.parametrize("setting, args, message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_names_the_flag(tmp_path, setting, args, message):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": ""}
    result = subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(tmp_path / "a.png"), "-m",
                             str(tmp_path / "missing.pth"), "-o", str(tmp_path / "out"), *args],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr  # not 3: the missing weights were never looked for
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_mask_choice_is_refused_by_argparse_from_the_options(tmp_path):
    result = subprocess.run([sys.executable, "-m", "gfp_core", "restore", "a.png", "--mask", "blob"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "--mask: invalid choice: 'blob' (choose from " in result.stderr
    assert all(m in result.stderr for m in options.MASKS.names)


# --- the web page -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def web_config(tmp_path_factory):
    pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")
    from web.app import build_demo
    from web.engine import RestoreEngine

    demo = build_demo(RestoreEngine(device="cpu", output_dir=tmp_path_factory.mktemp("web-out")))
    config = demo.get_config_file() if hasattr(demo, "get_config_file") else demo.config
    return {c["props"]["label"]: c["props"] for c in config["components"] if c.get("props", {}).get("label")}


def _values(props) -> tuple:
    return tuple(c[1] if isinstance(c, (list, tuple)) else c for c in props["choices"])


def test_web_controls_are_the_options(web_config):
    from web.engine import LABELS

    controls = {setting: web_config[label] for setting, label in LABELS.items()}
    assert _values(controls["select"]) == options.SELECTS.names
    assert _values(controls["mask"]) == options.MASKS.names
    assert _values(controls["detector"]) == options.DETECTORS.names
    assert _values(controls["background"]) == options.BACKGROUNDS.names
    assert _values(controls["model"]) == options.MODELS.names
    for setting, r in [("upscale", options.WEB_UPSCALE), ("fidelity", options.FIDELITY),
                       ("visibility", options.VISIBILITY), ("threshold", options.WEB_THRESHOLD)]:
        assert (controls[setting]["minimum"], controls[setting]["maximum"]) == r.bounds, setting
    assert controls["upscale"]["step"] == 1


def test_web_check_accepts_exactly_the_options():
    pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")
    from web.engine import RestoreOptions

    for field, choices in [("faces", options.SELECTS), ("mask", options.MASKS), ("detector", options.DETECTORS),
                           ("background", options.BACKGROUNDS), ("model", options.MODELS)]:
        for name in choices.names:
            RestoreOptions(**{field: name}).check()
        with pytest.raises(InvalidOptionError):
            RestoreOptions(**{field: "not-" + choices.names[0]}).check()
    for value in (1, 2, 3, 4):
        RestoreOptions(upscale=value).check()
    for value in (0, 2.5, 5):
        with pytest.raises(InvalidOptionError):
            RestoreOptions(upscale=value).check()


WEB_CASES = [({"threshold": -5}, "threshold", "Detection threshold must be between 0.05 and 0.99, got -5"),
             ({"fidelity": 1.5}, "fidelity", "Fidelity must be between 0 and 1, got 1.5"),
             ({"upscale": 3.5}, "upscale", "Upscale must be a whole number from 1 to 4, got 3.5"),
             ({"mask": "blob"}, "mask", "Blending mask must be one of box, ellipse, parsing, got 'blob'")]


@pytest.mark.parametrize("bad, setting, message", WEB_CASES, ids=[c[1] for c in WEB_CASES])
def test_web_messages_name_the_control(bad, setting, message):
    pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")
    from web.engine import RestoreOptions

    with pytest.raises(InvalidOptionError) as caught:
        RestoreOptions(**bad).check()
    assert caught.value.setting == setting and str(caught.value) == message


def test_web_number_fields_name_the_control():
    pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")
    from web.app import make_options

    with pytest.raises(InvalidOptionError, match="^Fidelity must be a number, got 'lots'$"):
        make_options("v1.4", "lots", 1, 2, "embedded", 0.9, "all", "", "box", "lanczos", "png")


# --- the package -----------------------------------------------------------------------------------

def test_the_public_api_imports_from_the_package():
    code = ("import sys, gfp_core; assert 'torch' not in sys.modules; "
            "from gfp_core import (FaceRestorer, Engine, EngineOptions, EngineResult, load_model, restore_aligned, "
            "read_picture, write_image, InvalidOptionError, GFPError, options); "
            "assert options.MASKS.names == ('box', 'ellipse', 'parsing'); "
            "assert all(name in gfp_core.__doc__ for name in gfp_core.__all__ if not name.startswith('_'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
