"""``python -m gfp_core restore`` on whole photos: a folder of good and bad files, as a user would."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data


def run_restore(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": "",
           "HF_HUB_CACHE": str(tmp_path / "hf")}
    return subprocess.run([sys.executable, "-m", "gfp_core", "restore", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.fixture
def photo_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    img = data.astronaut()
    Image.fromarray(img).save(folder / "astronaut.jpg", quality=95)
    Image.fromarray(img).convert("L").save(folder / "grey.png")
    Image.fromarray(np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])).save(folder / "rgba.png")
    from gfp_core.image import write_image
    write_image(folder / "deep16.png", img.astype(np.uint16) * 257)
    Image.fromarray(img).convert("CMYK").save(folder / "cmyk.jpg")
    portrait = Image.fromarray(img[:, 56:456])  # 400 wide, 512 tall
    rotated = portrait.transpose(Image.Transpose.ROTATE_90)  # stored sideways …
    exif = rotated.getexif()
    exif[0x0112] = 6  # … with EXIF saying "rotate 90° clockwise to display"
    rotated.save(folder / "exif_rotated.jpg", exif=exif, quality=95)
    Image.fromarray(img[:8, :8]).save(folder / "tiny.png")
    Image.fromarray(data.coins()).save(folder / "no_face.png")
    # bad files
    (folder / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "truncated.jpg").write_bytes((folder / "astronaut.jpg").read_bytes()[:6000])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("this is not an image")
    Image.new("RGB", (2500, 2500), (90, 90, 90)).save(folder / "huge.png")
    return folder


def test_folder_with_good_and_bad_files(photo_folder, tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    result = run_restore(str(photo_folder), "-m", str(tiny_checkpoint), "--detector", "embedded", "-s", "2",
                         "-o", str(out), "--max-pixels", "4000000", tmp_path=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "8 images restored (6 faces, 2 without a face), 0 skipped" in result.stderr
    assert "5 failed" in result.stderr
    for bad, why in (("corrupt.jpg", "not a readable image"), ("truncated.jpg", "not a readable image"),
                     ("empty.png", "empty file"), ("notes.png", "not a readable image"),
                     ("huge.png", "over the limit")):
        assert any(bad in line and why in line for line in result.stderr.splitlines()), bad
    assert "Traceback" not in result.stderr

    restored = out / "restored_imgs"
    shapes = {p.name: np.asarray(Image.open(p)).shape for p in restored.iterdir() if p.suffix != ".png" or
              p.name != "deep16.png"}
    assert shapes["astronaut.jpg"] == (1024, 1024, 3)
    assert shapes["grey.png"] == (1024, 1024)
    assert shapes["rgba.png"] == (1024, 1024, 4)
    assert shapes["cmyk.jpg"] == (1024, 1024, 3)
    assert shapes["exif_rotated.jpg"] == (1024, 800, 3)  # upright, as displayed
    assert shapes["tiny.png"] == (16, 16, 3)
    assert shapes["no_face.png"][:2] == (606, 768)
    import cv2
    deep = cv2.imread(str(restored / "deep16.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (1024, 1024, 3)
    assert len(list((out / "restored_faces").iterdir())) == 6
    assert len(list((out / "cropped_faces").iterdir())) == 6
    assert len(list((out / "cmp").iterdir())) == 6
    assert not (restored / "corrupt.jpg").exists()


def test_globs_and_skip_existing(tmp_path, tiny_checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        Image.fromarray(data.astronaut()).save(folder / name)
    out = tmp_path / "out"
    first = run_restore(str(folder / "*.png"), "-m", str(tiny_checkpoint), "--detector", "embedded", "-o", str(out),
                        "--ext", "jpg", "--suffix", "_gfp", "-s", "1", tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in (out / "restored_imgs").iterdir()) == ["a_gfp.jpg", "b_gfp.jpg"]
    second = run_restore(str(folder), "-m", str(tiny_checkpoint), "--detector", "embedded", "-o", str(out),
                         "--ext", "jpg", "--suffix", "_gfp", "-s", "1", tmp_path=tmp_path)
    assert second.returncode == 0 and "1 images restored" in second.stderr and "2 skipped" in second.stderr


@pytest.mark.heavy
def test_sample_photos_end_to_end_with_a_full_size_random_model(tmp_path):
    """The published v1.4 architecture (random weights) on the bundled photo and the six-face t1.jpg."""
    weights = tmp_path / "GFPGANv1.4-random.pth"
    subprocess.run([sys.executable, "-m", "gfp_core", "random-weights", "v1.4", str(weights)], check=True,
                   capture_output=True)
    t1 = Path(importlib.util.find_spec("insightface").submodule_search_locations[0]) / "data/images/t1.jpg"
    shutil.copy(t1, tmp_path / "t1.jpg")
    sample = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"
    out = tmp_path / "out"
    result = run_restore(str(sample), str(tmp_path / "t1.jpg"), "-m", str(weights), "-o", str(out),
                         tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    # the ResNet-50 weights are not here: the fallback happens, and is said
    assert ("WARNING: retinaface_resnet50 weights (detection_Resnet50_Final.pth) are not on this machine and "
            "HF_HUB_OFFLINE is set; using the embedded RetinaFace MobileNet-0.25 face detector instead"
            in result.stderr)
    assert "2 images restored (7 faces, 0 without a face)" in result.stderr
    t1_in = np.asarray(Image.open(t1))
    t1_out = np.asarray(Image.open(out / "restored_imgs" / "t1.jpg"))
    assert t1_out.shape == (t1_in.shape[0] * 2, t1_in.shape[1] * 2, 3)
    assert len(list((out / "restored_faces").iterdir())) == 7
