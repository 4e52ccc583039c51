"""The demo's restore function without a server (web/engine.py), on a small random GFPGAN: what comes
back for photos in odd modes, and the limits that protect the server."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")

from gfp_core.errors import InvalidImageError  # noqa: E402
from web.engine import RestoreEngine, RestoreOptions  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
FAST = dict(upscale=1, mask="box", detector="embedded")


@pytest.fixture
def engine(isolated, tiny_checkpoint, monkeypatch, tmp_path):
    """An engine whose 'v1.4' is the small random model, found in a model folder."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(tiny_checkpoint, folder / "GFPGANv1.4.pth")
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")
    return RestoreEngine(device="cpu", output_dir=tmp_path / "out", max_pixels=2_000_000,
                         max_output_pixels=4_000_000)


@pytest.mark.parametrize("mode, suffix, fmt", [("RGBA", ".png", "png"), ("L", ".png", "png"),
                                               ("I;16", ".png", "png"), ("CMYK", ".jpg", "jpeg"),
                                               ("RGB", ".jpg", "webp"), ("LA", ".png", "png")])
def test_the_download_keeps_the_photo_s_mode(engine, tmp_path, mode, suffix, fmt):
    rgb = Image.open(PHOTO).convert("RGB")
    if mode in ("RGBA", "LA"):
        image = rgb.convert(mode[:-1])
        image.putalpha(Image.linear_gradient("L").resize(rgb.size))
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    else:
        image = rgb.convert(mode)
    path = tmp_path / f"photo{suffix}"
    image.save(path)
    outcome = engine.restore(path, RestoreOptions(**FAST, output_format=fmt))
    assert outcome.num_restored == 1 and outcome.file.suffix == {"jpeg": ".jpg"}.get(fmt, f".{fmt}")
    saved = np.asarray(Image.open(outcome.file)) if mode != "I;16" else None
    expected_shape = {"RGBA": (512, 512, 4), "L": (512, 512), "CMYK": (512, 512, 3), "RGB": (512, 512, 3),
                      "LA": (512, 512, 2)}
    if mode == "I;16":
        import cv2

        deep = cv2.imread(str(outcome.file), cv2.IMREAD_UNCHANGED)
        assert deep.dtype == np.uint16 and deep.shape == (512, 512)
    else:
        assert saved.shape == expected_shape[mode]
    if mode in ("RGBA", "LA"):  # the alpha channel comes back untouched
        assert np.array_equal(saved[..., -1], np.asarray(image)[..., -1])
    assert outcome.before.shape == outcome.after.shape == (512, 512, 3)  # the page always shows RGB


def test_limits_are_explained(engine, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 1200)).save(big)
    with pytest.raises(InvalidImageError, match="2000x1200 is 2 megapixels, over the limit of 2"):
        engine.restore(big, RestoreOptions(**FAST))
    with pytest.raises(InvalidImageError, match="would be 2048x2048 pixels.*choose a smaller upscale"):
        engine.restore(PHOTO, RestoreOptions(**{**FAST, "upscale": 4}))
    for bad, message in [({"fidelity": 1.5}, "fidelity must be between 0 and 1"),
                         ({"upscale": 2.5}, "upscale must be a whole number"),
                         ({"output_format": "gif"}, "output_format must be one of png, jpeg, webp")]:
        with pytest.raises(InvalidImageError, match=message):
            engine.restore(PHOTO, RestoreOptions(**{**FAST, **bad}))


def test_models_are_loaded_once_and_results_expire(engine, tmp_path):
    first = engine.restore(PHOTO, RestoreOptions(**FAST))
    second = engine.restore(PHOTO, RestoreOptions(**{**FAST, "fidelity": 0.0}))
    assert engine.restorer_model("v1.4") is engine.restorer_model("v1.4")
    assert first.file.is_file() and second.file != first.file
    assert not np.array_equal(first.after, second.after)  # fidelity is applied per request
    engine.keep_s = -1  # everything is old now: the next save clears earlier results
    third = engine.restore(PHOTO, RestoreOptions(**FAST))
    assert not first.file.exists() and not second.file.exists() and third.file.is_file()
    assert engine.peak_running == 1 and engine.running == 0
