"""Hostile and broken weight files: every one is refused with the project's own error naming the file,
through the library and through the command line (exit 2, one `error:` line, no traceback).

Each case writes a real file the way an attacker or a bad download would; nothing is mocked.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from gfp_core.errors import GFPError, UnsafeCheckpointError, UnsupportedCheckpointError
from gfp_core.weights import load_model, read_state_dict
from gfp_core.weights import checkpoint as checkpoint_mod
from gfp_core.weights.checkpoint import _torch_weights_only_is_safe, is_safetensors, write_state_dict

# --- crafted files ----------------------------------------------------------------------------


def _safetensors(path: Path, header: bytes, body: bytes = b"", length: int | None = None) -> Path:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + body)
    return path


def huge_header_length(tmp: Path, tiny: dict) -> Path:
    return _safetensors(tmp / "huge-header.safetensors", b'{"__metadata__":{}}', length=2 ** 62)


def header_not_json(tmp: Path, tiny: dict) -> Path:
    return _safetensors(tmp / "not-json.safetensors", b"{this is not json}")


def tensor_larger_than_file(tmp: Path, tiny: dict) -> Path:
    header = {"w": {"dtype": "F32", "shape": [2 ** 31, 2 ** 31], "data_offsets": [0, 2 ** 62]}}
    return _safetensors(tmp / "overflow.safetensors", json.dumps(header).encode())


def unknown_dtype(tmp: Path, tiny: dict) -> Path:
    header = {"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}
    return _safetensors(tmp / "dtype.safetensors", json.dumps(header).encode(), b"\0" * 4)


def truncated_safetensors(tmp: Path, tiny: dict) -> Path:
    whole = write_state_dict(tiny, tmp / "whole.safetensors")
    cut = tmp / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    return cut


def text_file(tmp: Path, tiny: dict) -> Path:
    path = tmp / "passwd.pth"
    path.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    return path


def zip_without_checkpoint(tmp: Path, tiny: dict) -> Path:
    path = tmp / "archive.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "no tensors here")
    return path


def random_bytes(tmp: Path, tiny: dict) -> Path:
    path = tmp / "noise.pth"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _saved(name: str, obj) -> Callable[[Path, dict], Path]:
    def make(tmp: Path, tiny: dict) -> Path:
        path = tmp / name
        torch.save(obj(tiny) if callable(obj) else obj, path)
        return path
    make.__name__ = name
    return make


def _without(*keys: str) -> Callable[[dict], dict]:
    return lambda tiny: {"params_ema": {k: v for k, v in tiny.items() if k not in keys}}


def _with(key: str, value: torch.Tensor) -> Callable[[dict], dict]:
    return lambda tiny: {"params_ema": {**tiny, key: value}}


def _partial(tiny: dict) -> dict:
    keys = list(tiny)
    return {"params_ema": {k: tiny[k] for k in keys[:5] + keys[40:]}}


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def code_execution(tmp: Path, tiny: dict) -> Path:
    path = tmp / "evil.pth"
    torch.save({"params_ema": tiny, "payload": _RunsCode(tmp / "code-ran")}, path)
    return path


CASES: dict[str, Callable[[Path, dict], Path]] = {
    "safetensors header length 2^62": huge_header_length,
    "safetensors header not JSON": header_not_json,
    "safetensors tensor larger than the file": tensor_larger_than_file,
    "safetensors unknown dtype": unknown_dtype,
    "safetensors truncated": truncated_safetensors,
    "text file": text_file,
    "zip that is no torch checkpoint": zip_without_checkpoint,
    "random bytes": random_bytes,
    "list": _saved("list.pth", [torch.zeros(2)]),
    "bare tensor": _saved("tensor.pth", torch.zeros(2)),
    "nested dicts": _saved("nested.pth", {"a": {"b": {"c": torch.zeros(1)}}}),
    "non-tensor values": _saved("numbers.pth", {"conv.weight": 3, "conv.bias": [1.0]}),
    "integer keys": _saved("int-keys.pth", {1: torch.zeros(1)}),
    "no weights": _saved("empty.pth", {}),
    "params_ema is None": _saved("none.pth", {"params_ema": None}),
    "GFPGAN with 35 keys deleted": _saved("partial.pth", _partial),
    "GFPGAN without constant_input": _saved("no-const.pth", _without("stylegan_decoder.constant_input.weight")),
    "GFPGAN without condition_scale": _saved("no-cond.pth", _without("condition_scale.0.0.weight")),
    "GFPGAN without its last to_rgb": _saved("no-rgb.pth", _without("stylegan_decoder.to_rgbs.3.modulated_conv.weight")),
    "GFPGAN constant_input wrong shape": _saved("const-shape.pth",
                                                _with("stylegan_decoder.constant_input.weight", torch.zeros(3))),
    "GFPGAN style_mlp scalar": _saved("mlp-scalar.pth", _with("stylegan_decoder.style_mlp.1.weight", torch.zeros(()))),
    "GFPGAN final_linear wrong shape": _saved("linear-shape.pth", _with("final_linear.weight", torch.zeros(7, 3))),
    "GFPGAN integer weights": _saved("int-weights.pth", lambda tiny: {"params_ema": {
        k: v.to(torch.int32) if k == "final_linear.weight" else v for k, v in tiny.items()}}),
    "GFPGAN with a huge size": _saved("huge-size.pth", lambda tiny: {"params_ema": {
        **tiny, **{f"conv_body_down.{i}.conv1.weight": torch.zeros(1) for i in range(40)}}}),
    "code execution on load": code_execution,
}


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint) -> dict:
    return read_state_dict(tiny_checkpoint)


@pytest.fixture(params=list(CASES), ids=list(CASES))
def bad_file(request, tmp_path, tiny) -> Path:
    return CASES[request.param](tmp_path, tiny)


# --- the library ------------------------------------------------------------------------------

def test_library_refuses_with_its_own_error_naming_the_file(bad_file):
    with pytest.raises(GFPError) as err:
        load_model(bad_file, device="cpu")
    assert isinstance(err.value, (UnsupportedCheckpointError, UnsafeCheckpointError)), repr(err.value)
    assert str(bad_file) in str(err.value)
    assert not (bad_file.parent / "code-ran").exists()


def test_etc_passwd_is_not_a_checkpoint():
    passwd = Path("/etc/passwd")
    if not passwd.is_file():
        pytest.skip("no /etc/passwd here")
    with pytest.raises(UnsupportedCheckpointError, match="/etc/passwd"):
        load_model(passwd, device="cpu")


@pytest.mark.parametrize("key_index", range(0, 285, 19))
def test_any_missing_key_of_a_gfpgan_checkpoint_is_refused(tmp_path, tiny, key_index):
    key = list(tiny)[key_index % len(tiny)]
    path = tmp_path / "missing-one.pth"
    torch.save({"params_ema": {k: v for k, v in tiny.items() if k != key}}, path)
    with pytest.raises(UnsupportedCheckpointError, match="missing-one.pth"):
        load_model(path, device="cpu")


def test_safetensors_sniffing_does_not_trust_the_length_field(tmp_path, tiny):
    huge = huge_header_length(tmp_path, tiny)
    assert not is_safetensors(huge)  # claims more bytes than the file has
    with pytest.raises(UnsupportedCheckpointError, match=r"claims 4,611,686,018,427,387,904 bytes"):
        read_state_dict(huge)
    good = write_state_dict(tiny, tmp_path / "good.safetensors")
    assert is_safetensors(good) and not is_safetensors(_saved("p.pth", {"params_ema": tiny})(tmp_path, tiny))


# --- the command line -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(path)
    return path


def _offline_env(tmp_path: Path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": "",
            "HF_HUB_CACHE": str(tmp_path / "hf"), "GFP_HUB_REPO": "", "GFP_ALLOW_UNVERIFIED": ""}


def _restore(model: Path, picture: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(picture), "-m", str(model),
                           "-o", str(tmp_path / "out"), "--device", "cpu"],
                          capture_output=True, text=True, env=_offline_env(tmp_path), timeout=300)


@pytest.mark.heavy
def test_cli_refuses_with_exit_2_and_no_traceback(bad_file, picture, tmp_path):
    result = _restore(bad_file, picture, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "error:" in result.stderr and str(bad_file) in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() and not (bad_file.parent / "code-ran").exists()


@pytest.mark.heavy
def test_cli_refuses_etc_passwd(picture, tmp_path):
    result = _restore(Path("/etc/passwd"), picture, tmp_path)
    assert result.returncode == 2 and "error: /etc/passwd" in result.stderr and "Traceback" not in result.stderr


# --- the torch version the pickle reader trusts ----------------------------------------------

@pytest.mark.parametrize("version, safe", [
    ("2.5.1", False), ("2.6.0", False), ("2.9.1", False), ("2.9.1+cu128", False), ("2.10.0a0", False),
    ("2.10.0.dev20251201", False), ("2.10.0rc1", False), ("2.6.0a0", False), ("1.13.1", False),
    ("2.10.0", True), ("2.10.0+cpu", True), ("2.10.1", True), ("2.14.1+cu128", True), ("2.15", True),
    ("3.0.0", True), ("nonsense", False),
])
def test_torch_weights_only_is_safe(version, safe):
    assert _torch_weights_only_is_safe(version) is safe


def test_pickle_checkpoints_are_refused_on_an_old_torch(tmp_path, tiny_checkpoint, tiny, monkeypatch):
    monkeypatch.setattr(checkpoint_mod, "_torch_version", lambda: "2.5.1")
    with pytest.raises(UnsafeCheckpointError) as err:
        load_model(tiny_checkpoint, device="cpu")
    message = str(err.value)
    assert str(tiny_checkpoint) in message and "torch 2.5.1" in message
    assert "torch>=2.10.0" in message and ".safetensors" in message
    # the same weights as safetensors load on any torch
    st = write_state_dict(tiny, tmp_path / "tiny.safetensors")
    model = load_model(st, device="cpu")
    assert torch.equal(model.state_dict()["final_linear.bias"], tiny["final_linear.bias"])


def test_crafted_pickle_never_runs_on_an_old_torch(tmp_path, monkeypatch):
    """On an old torch the file is refused before torch.load sees it: no bypass can run."""
    monkeypatch.setattr(checkpoint_mod, "_torch_version", lambda: "2.4.0")
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"params_ema": _RunsCode(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="torch 2.4.0"):
        load_model(path, device="cpu")
    assert not marker.exists()
