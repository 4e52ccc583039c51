"""The CLI (``python -m gfp_core restore``), the web demo's API and the all-in-one ComfyUI node run the
one engine: for the same photo, weights file and options they restore the same faces, bit for bit.

All three load the web demo's weights (seeded random GFPGANv1.4 in its offline Hugging Face cache):
the CLI by path, ComfyUI as a file in models/facerestore_models, the web demo by registry name. The
embedded detector at threshold 0.9, mask box or ellipse, upscale 1 or 2, fidelity 1.

What is compared exactly, and why:
- the restored face crops: the CLI's ``restored_faces/*.png`` and the node's third output saved by
  SaveImage (8-bit model outputs; ComfyUI's k/255 floats save back to exactly k);
- the whole result: the CLI's ``restored_imgs/*.png`` and the web demo's downloadable PNG (both paste
  into the 8-bit photo).
Not exactly: the node's whole result. It pastes into ComfyUI's float frame (and at upscale > 1
resizes the background with Lanczos in float) and SaveImage truncates floats to 8 bits, while the
8-bit front ends round the resized background and again the blend: one level at upscale 1, two at
upscale 2 (one from each rounding). The web gallery's before|after pairs are lossy WebP (Gradio's
default), so they are not compared.
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.heavy

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "assets" / "astronaut.jpg"  # 512×512, one face
THRESHOLD = 0.9


def pixels(source) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(source) if isinstance(source, bytes) else source).convert("RGB"))


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory) -> Path:
    """The photo as a lossless PNG: every front end decodes the same pixels."""
    path = tmp_path_factory.mktemp("agree") / "astronaut.png"
    Image.open(PHOTO).convert("RGB").save(path)
    return path


@pytest.fixture(scope="module")
def weights(web_demo) -> Path:
    """The web demo's GFPGANv1.4 file (seeded random weights) in its Hugging Face cache."""
    [path] = [p for p in web_demo.hf_cache.rglob("GFPGANv1.4.pth") if p.is_file()]
    return path.resolve()


@pytest.fixture(scope="module")
def comfy_weights(comfy, weights) -> str:
    dest = comfy.models_dir / "facerestore_models" / "GFPGANv1.4_web_demo.pth"
    if not dest.exists():
        shutil.copy(weights, dest)
    return dest.name


@pytest.fixture(scope="module")
def comfy_photo(comfy, photo_png) -> str:
    return comfy.upload_image(photo_png, name="agree_astronaut.png")


def run_cli(photo: Path, weights: Path, out: Path, mask: str, upscale: int) -> tuple[np.ndarray, list[np.ndarray]]:
    cmd = [sys.executable, "-m", "gfp_core", "restore", str(photo), "-o", str(out), "-m", str(weights), "-s",
           str(upscale), "--fidelity", "1", "--detector", "embedded", "--threshold", str(THRESHOLD), "--mask", mask,
           "--bg-upsampler", "lanczos", "--device", "cpu", "--ext", "png", "-q"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    faces = [pixels(p) for p in sorted((out / "restored_faces").glob("*.png"))]
    [image] = [pixels(p) for p in (out / "restored_imgs").glob("*.png")]
    return image, faces


def run_web(web_demo, photo: Path, mask: str, upscale: int) -> np.ndarray:
    from gradio_client import Client, handle_file

    client = Client(web_demo.url, verbose=False)
    result = client.predict(handle_file(str(photo)), "v1.4", 1.0, 1.0, upscale, "embedded", THRESHOLD, "all", "",
                            mask, "lanczos", "png", api_name="/restore")
    return pixels(result[-1])


def run_node(comfy, photo: str, model_file: str, mask: str, upscale: int) -> tuple[np.ndarray, list[np.ndarray]]:
    graph = {
        "image": {"class_type": "LoadImage", "inputs": {"image": photo}},
        "model": {"class_type": "GFPGANModelLoader", "inputs": {"model_name": model_file, "device": "cpu",
                                                                "dtype": "fp32"}},
        "detector": {"class_type": "GFPGANFaceDetectorLoader", "inputs": {"detector": "embedded", "device": "cpu"}},
        "restore": {"class_type": "GFPGANRestoreFaces", "inputs": {
            "image": ["image", 0], "model": ["model", 0], "detector": ["detector", 0], "fidelity": 1.0,
            "visibility": 1.0, "mask": mask, "select": "all", "indices": "0", "max_faces": 0,
            "upscale": float(upscale), "threshold": THRESHOLD}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["restore", 0], "filename_prefix": "agree/image"}},
        "faces": {"class_type": "SaveImage", "inputs": {"images": ["restore", 2], "filename_prefix": "agree/faces"}},
    }
    entry = comfy.run(graph, timeout=600)
    [image] = [pixels(b) for b in comfy.output_images(entry, "save")]
    faces = [pixels(b) for b in comfy.output_images(entry, "faces")]
    return image, faces


@pytest.mark.parametrize("mask,upscale", [("box", 2), ("ellipse", 1)])
def test_cli_web_and_node_restore_the_same_faces(comfy, web_demo, photo_png, weights, comfy_weights, comfy_photo,
                                                 tmp_path, mask, upscale):
    cli_image, cli_faces = run_cli(photo_png, weights, tmp_path / "cli", mask, upscale)
    web_image = run_web(web_demo, photo_png, mask, upscale)
    node_image, node_faces = run_node(comfy, comfy_photo, comfy_weights, mask, upscale)

    assert len(cli_faces) == len(node_faces) == 1
    assert np.array_equal(cli_faces[0], node_faces[0]), \
        f"restored faces differ by up to {np.abs(cli_faces[0].astype(int) - node_faces[0]).max()}"
    source = pixels(photo_png)
    assert np.abs(cli_faces[0].astype(int) - 128).mean() > 1  # a face came out, not a blank

    assert cli_image.shape == web_image.shape == node_image.shape == (512 * upscale, 512 * upscale, 3)
    assert np.array_equal(cli_image, web_image), \
        f"CLI and web results differ by up to {np.abs(cli_image.astype(int) - web_image).max()}"
    # float background and paste + SaveImage's truncation against the 8-bit path's roundings
    diff = np.abs(cli_image.astype(int) - node_image.astype(int))
    assert diff.max() <= (1 if upscale == 1 else 2), diff.max()
    if upscale == 1:  # away from the face the photo itself, in every front end
        assert np.array_equal(node_image[400:], source[400:]) and np.array_equal(cli_image[400:], source[400:])
