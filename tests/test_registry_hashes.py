"""The registry's published sizes and SHA-256 values, where they come from, and seeded random weights
marked as such."""
from __future__ import annotations

import pytest
import torch

from gfp_core.synthetic import random_state_dict, write_random_checkpoint
from gfp_core.weights import convert_checkpoint, get_spec, load_model, load_model_with_info
from gfp_core.weights.checkpoint import SYNTHETIC_KEY, read_raw, write_state_dict

# Release files whose SHA-256 (and, where known, size) public sources publish: name -> (bytes, sha256, sources)
PUBLISHED = {
    "GFPGANv1.2": (None, "29e25ee90c170f4231163f4c83df6b59c968b73f3ce00cb884015ae005db083c", "two"),
    "GFPGANv1.3": (348_632_874, "c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70", "many"),
    "GFPGANv1.4": (348_632_874, "e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", "many"),
    "retinaface_resnet50": (109_497_761, "6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d", "many"),
    "parsenet": (85_331_193, "3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2", "many"),
    "retinaface_mobile0.25": (None, "2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220", "one"),
    "bisenet": (None, "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567", "one"),
    "realesrgan_x2plus": (None, "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb", "one"),
    "realesr_general_x4v3": (None, "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292", "one"),
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_values_are_in_the_registry_with_their_source(name):
    size, sha, sources = PUBLISHED[name]
    spec = get_spec(name)
    assert (spec.size, spec.sha256) == (size, sha)
    assert spec.sha256_source and "not re-derived" in spec.sha256_source
    assert spec.sha256_source.startswith({"many": "many independent", "two": "two independent",
                                          "one": "one source only"}[sources])


def test_models_without_a_published_hash_have_no_size_either():
    for name in ("GFPGANv1", "arcface_resnet18", "stylegan2_512_prior", "ffhq_eye_mouth_landmarks"):
        spec = get_spec(name)
        assert (spec.sha256, spec.size) == (None, None)


def test_v13_and_v14_share_their_size_not_their_hash():
    # the two release files have identical byte counts: only the hash tells them apart
    v13, v14 = get_spec("v1.3"), get_spec("v1.4")
    assert v13.size == v14.size and v13.sha256 != v14.sha256


# --- seeded random weights say what they are --------------------------------------------------

X4V3 = "realesr_general_x4v3"  # the smallest registry network: quick to make and load


@pytest.fixture
def x4v3_folder(isolated, monkeypatch):
    """Where the (offline) resolver finds realesr-general-x4v3.pth; the file is sniffed by content, so
    it may hold either format."""
    folder = isolated / "models"
    folder.mkdir()
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    return folder / get_spec(X4V3).filename


@pytest.mark.parametrize("fmt", [".pth", ".safetensors"])
def test_random_weights_are_marked_synthetic(x4v3_folder, tmp_path, fmt):
    written = write_random_checkpoint(X4V3, tmp_path / f"x4v3{fmt}", seed=1)
    written.rename(x4v3_folder)
    info = load_model_with_info(X4V3, device="cpu", allow_unverified=True).info
    assert info.synthetic is True and info.verified is False
    _, metadata = read_raw(x4v3_folder)
    assert "seeded random weights" in metadata[SYNTHETIC_KEY]


def test_marked_pth_is_still_an_official_format_file(tmp_path):
    """The marker is a plain string beside params_ema: the official loaders (and weights_only) accept it."""
    path = write_random_checkpoint(X4V3, tmp_path / "x4v3.pth", seed=1)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"params_ema", SYNTHETIC_KEY} and isinstance(raw[SYNTHETIC_KEY], str)


@pytest.mark.parametrize("fmt", [".pth", ".safetensors"])
def test_other_weights_are_not_synthetic(x4v3_folder, tmp_path, fmt):
    write_state_dict(random_state_dict(X4V3, seed=1), tmp_path / f"plain{fmt}").rename(x4v3_folder)
    assert load_model_with_info(X4V3, device="cpu", allow_unverified=True).info.synthetic is False


@pytest.mark.parametrize("fmt", [".pth", ".safetensors"])
def test_a_marked_gfpgan_file_loaded_by_path_is_synthetic(tmp_path, tiny_checkpoint, fmt):
    from gfp_core.weights import read_state_dict

    state = read_state_dict(tiny_checkpoint)
    marked = write_state_dict(state, tmp_path / f"marked{fmt}", metadata={SYNTHETIC_KEY: "seeded random weights"})
    assert load_model_with_info(marked, device="cpu").info.synthetic is True
    assert load_model_with_info(tiny_checkpoint, device="cpu").info.synthetic is False


@pytest.mark.parametrize("src_fmt, dst_fmt", [(".pth", ".safetensors"), (".safetensors", ".pth")])
def test_conversion_keeps_the_marker(x4v3_folder, tmp_path, src_fmt, dst_fmt):
    src = write_random_checkpoint(X4V3, tmp_path / f"src{src_fmt}", seed=2)
    convert_checkpoint(src, tmp_path / f"dst{dst_fmt}").rename(x4v3_folder)
    assert load_model_with_info(X4V3, device="cpu", allow_unverified=True).info.synthetic is True
