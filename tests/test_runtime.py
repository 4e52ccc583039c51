"""Device/dtype policy, batched restoration, determinism and image conversion."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gfp_core.device import resolve_device, resolve_dtype
from gfp_core.errors import InvalidImageError
from gfp_core.image import faces_to_tensor, load_rgb, tensor_to_faces
from gfp_core.restore import restore_aligned
from gfp_core.weights import load_model, load_model_with_info


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    return load_model(tiny_checkpoint, device="cpu")


def smooth_faces(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in low])


def test_device_and_dtype_policy():
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    assert resolve_device(None) == resolve_device("auto")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype(None) is torch.float32
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("fp16") is torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8")
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        resolve_dtype("fp16", torch.device("cpu"))
    assert resolve_dtype("fp16", torch.device("cuda")) is torch.float16
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_model_comes_ready_for_inference(tiny, tiny_checkpoint):
    assert not tiny.training
    assert not any(p.requires_grad for p in tiny.parameters())
    info = load_model_with_info(tiny_checkpoint, device="cpu").info
    assert info.arch == "GFPGANv1Clean" and info.source == "path"


def test_batches_give_the_same_faces_as_one_at_a_time(tiny):
    faces = smooth_faces(5)
    batched = restore_aligned(tiny, faces, batch_size=4)  # a chunk of 4 and a chunk of 1
    single = np.concatenate([restore_aligned(tiny, f, batch_size=1) for f in faces])
    assert batched.shape == (5, 64, 64, 3) and batched.dtype == np.uint8
    assert np.abs(batched.astype(int) - single).max() <= 1


def test_stored_noise_is_deterministic_random_noise_is_not(tiny):
    faces = smooth_faces(1, seed=3)
    assert np.array_equal(restore_aligned(tiny, faces), restore_aligned(tiny, faces))
    a = restore_aligned(tiny, faces, randomize_noise=True)
    b = restore_aligned(tiny, faces, randomize_noise=True)
    assert not np.array_equal(a, b)


def test_bf16_runs_close_to_fp32(tiny_checkpoint):
    faces = smooth_faces(2, seed=4)
    fp32 = restore_aligned(load_model(tiny_checkpoint, device="cpu"), faces)
    bf16_model = load_model(tiny_checkpoint, device="cpu", dtype="bf16")
    assert next(bf16_model.parameters()).dtype is torch.bfloat16
    bf16 = restore_aligned(bf16_model, faces)
    assert np.abs(bf16.astype(int) - fp32).mean() < 8


def test_wrong_face_shape_is_a_clear_error(tiny):
    with pytest.raises(InvalidImageError, match="64x64"):
        restore_aligned(tiny, np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[B, 3, 64, 64\]"):
        tiny(torch.zeros(1, 3, 32, 32))


def test_tensor_conversion_round_trips_uint8():
    faces = smooth_faces(2, seed=5)
    t = faces_to_tensor(faces)
    assert t.shape == (2, 3, 64, 64) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(tensor_to_faces(t), faces)
    assert np.array_equal(tensor_to_faces(faces_to_tensor(faces.astype(np.float32) / 255)), faces)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "I;16", "P"])
def test_load_rgb_handles_image_modes(tmp_path, mode):
    rgb = smooth_faces(1, size=32)[0]
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    out = load_rgb(path)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert np.abs(out[..., 0].astype(int) - rgb[..., 0]).max() <= 1


def test_load_rgb_applies_exif_rotation(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # left half white
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    img.save(tmp_path / "r.jpg", exif=exif, quality=95)
    out = load_rgb(tmp_path / "r.jpg")
    assert out.shape == (40, 20, 3)
    assert out[:18].mean() > 200 and out[22:].mean() < 50  # white half now on top


def test_load_rgb_rejects_non_images(tmp_path):
    (tmp_path / "a.png").write_text("hello")
    with pytest.raises(InvalidImageError, match="not a readable image"):
        load_rgb(tmp_path / "a.png")
    with pytest.raises(InvalidImageError, match="no such file"):
        load_rgb(tmp_path / "missing.png")
