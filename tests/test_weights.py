"""Weights: registry look-ups, resolution order, verification, safe loading, detection, conversion."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import pickle
import threading
from pathlib import Path

import pytest
import torch
from helpers import put_in_hf_cache

from gfp_core.errors import (
    ChecksumMismatchError,
    UnknownModelError,
    UnsafeCheckpointError,
    UnsupportedCheckpointError,
    WeightsNotFoundError,
)
from gfp_core.weights import (
    MODELS,
    add_model_dir,
    convert_checkpoint,
    recognise_architecture,
    get_spec,
    load_model,
    load_model_with_info,
    read_state_dict,
    resolve_weights,
)
from gfp_core.weights import resolve as resolve_mod
from gfp_core.weights.checkpoint import write_state_dict


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()



# --- registry -------------------------------------------------------------------------------

def test_registry_covers_the_required_models():
    names = {s.name for s in MODELS}
    assert {"GFPGANv1", "GFPGANv1.2", "GFPGANv1.3", "GFPGANv1.4", "retinaface_resnet50", "retinaface_mobile0.25",
            "parsenet", "bisenet", "arcface_resnet18"} <= names
    for spec in MODELS:
        assert spec.url.startswith("https://") and spec.url.endswith(spec.filename)
        assert spec.license and spec.arch and spec.description
        assert spec.sha256 is None or len(spec.sha256) == 64


@pytest.mark.parametrize("alias, name", [("v1.4", "GFPGANv1.4"), ("1.3", "GFPGANv1.3"), ("GFPGANV1.2", "GFPGANv1.2"),
                                         ("v1", "GFPGANv1"), ("GFPGANv1.4.pth", "GFPGANv1.4")])
def test_aliases(alias, name):
    assert get_spec(alias).name == name


def test_unknown_model_name_lists_known_names(isolated):
    with pytest.raises(UnknownModelError) as err:
        load_model("GFPGANv9")
    message = str(err.value)
    assert "GFPGANv9" in message
    for name in ("GFPGANv1", "GFPGANv1.2", "GFPGANv1.3", "GFPGANv1.4"):
        assert name in message


# --- resolution -----------------------------------------------------------------------------

def test_missing_weights_offline_names_the_file_and_where_to_put_it(isolated):
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights("v1.4")
    message = str(err.value)
    assert "GFPGANv1.4.pth" in message and "HF_HUB_OFFLINE" in message
    assert str(isolated / "home" / "models") in message
    assert "GFP_MODEL_DIRS" in message


def test_missing_explicit_path_is_reported(isolated):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        resolve_weights(isolated / "nope.pth")


def test_explicit_path_wins_over_folders(isolated, tiny_checkpoint):
    folder = isolated / "models"
    folder.mkdir()
    (folder / "GFPGANv1.pth").write_bytes(b"not this one")
    add_model_dir(folder)
    assert resolve_weights(tiny_checkpoint).path == tiny_checkpoint


def test_model_folders_are_searched_in_order(isolated, tiny_checkpoint, monkeypatch):
    first, second = isolated / "first", isolated / "second"
    for folder in (first, second):
        folder.mkdir()
        (folder / "GFPGANv1.pth").write_bytes(tiny_checkpoint.read_bytes())
    add_model_dir(first)
    monkeypatch.setenv("GFP_MODEL_DIRS", str(second))
    resolved = resolve_weights("v1")
    assert resolved.path == first / "GFPGANv1.pth" and resolved.source == "folder"
    assert not resolved.verified  # GFPGANv1 has no published SHA-256


def _v14_in_a_model_folder(isolated, tiny_checkpoint) -> Path:
    folder = isolated / "models"
    folder.mkdir()
    fake = folder / "GFPGANv1.4.pth"
    fake.write_bytes(tiny_checkpoint.read_bytes())
    add_model_dir(folder)
    return fake


def test_wrong_size_is_refused_unless_allowed(isolated, tiny_checkpoint, monkeypatch, caplog):
    fake = _v14_in_a_model_folder(isolated, tiny_checkpoint)
    with pytest.raises(ChecksumMismatchError) as err:
        load_model("v1.4")
    message = str(err.value)
    assert str(fake) in message and f"{fake.stat().st_size:,} bytes" in message and "expected 348,632,874" in message
    assert "--allow-unverified" in message and "GFP_ALLOW_UNVERIFIED" in message
    assert fake.exists()  # the user's file is never deleted
    assert load_model_with_info("v1.4", allow_unverified=True).info.verified is False
    assert "used anyway" in caplog.text and "348,632,874" in caplog.text
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")
    assert load_model_with_info("v1.4").info.path == str(fake)


def test_sha_mismatch_is_refused_unless_allowed(isolated, tiny_checkpoint, monkeypatch):
    fake = _v14_in_a_model_folder(isolated, tiny_checkpoint)
    # the registry's v1.4 with this file's size: only the hash can tell it is not the release file
    same_size = dataclasses.replace(get_spec("v1.4"), size=fake.stat().st_size)
    monkeypatch.setattr(resolve_mod, "get_spec", lambda name: same_size)
    with pytest.raises(ChecksumMismatchError) as err:
        load_model("v1.4")
    assert sha256(fake) in str(err.value) and get_spec("v1.4").sha256 in str(err.value)
    assert "--allow-unverified" in str(err.value) and "GFP_ALLOW_UNVERIFIED" in str(err.value)
    assert fake.exists()
    assert load_model_with_info("v1.4", allow_unverified=True).info.verified is False
    monkeypatch.setenv("GFP_ALLOW_UNVERIFIED", "1")
    assert load_model_with_info("v1.4").info.path == str(fake)


def test_a_file_known_by_the_hash_digits_in_its_name_is_checked_against_them(isolated, monkeypatch):
    """No published SHA-256 for torchvision's AlexNet, but torch.hub's name carries its first digits."""
    import torchvision

    folder = isolated / "models"
    folder.mkdir()
    wrong = folder / get_spec("alexnet_imagenet").filename  # alexnet-owt-7be5be79.pth
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), wrong)
    add_model_dir(folder)
    with pytest.raises(ChecksumMismatchError, match=f"{sha256(wrong)}, which does not start with 7be5be79"):
        resolve_weights("alexnet_imagenet")
    found = resolve_weights("alexnet_imagenet", allow_unverified=True)
    assert found.path == wrong and found.verified is False
    # the right digits: accepted, though still not verified as a whole published SHA-256 would be
    named = dataclasses.replace(get_spec("alexnet_imagenet"), filename=f"alexnet-{sha256(wrong)[:8]}.pth")
    wrong.rename(folder / named.filename)
    monkeypatch.setattr(resolve_mod, "get_spec", lambda name: named)
    found = resolve_weights("alexnet_imagenet")
    assert found.path == folder / named.filename and found.verified is False


def test_wrong_size_is_refused_without_hashing(isolated, tiny_checkpoint, monkeypatch):
    fake = _v14_in_a_model_folder(isolated, tiny_checkpoint)

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed")
    monkeypatch.setattr(resolve_mod, "sha256_of", no_hashing)
    with pytest.raises(ChecksumMismatchError, match="expected 348,632,874"):
        resolve_weights("v1.4")
    assert resolve_weights("v1.4", allow_unverified=True).verified is False


def test_download_of_the_wrong_size_is_discarded_without_hashing(isolated, tiny_checkpoint, http_server,
                                                                  monkeypatch):
    root, base = http_server
    (root / "GFPGANv1.4.pth").write_bytes(tiny_checkpoint.read_bytes())
    spec = dataclasses.replace(get_spec("v1.4"), url=f"{base}/GFPGANv1.4.pth")
    monkeypatch.setattr(resolve_mod, "sha256_of", lambda path: pytest.fail(f"{path} was hashed"))
    with pytest.raises(ChecksumMismatchError, match="expected 348,632,874.*discarded"):
        resolve_mod._download_url(spec, progress=False)
    assert list((isolated / "home" / "models").iterdir()) == []


def test_matching_sha_is_verified(isolated, tiny_checkpoint):
    spec = dataclasses.replace(get_spec("v1.4"), sha256=sha256(tiny_checkpoint), size=tiny_checkpoint.stat().st_size)
    assert resolve_mod.verify(tiny_checkpoint, spec, allow_unverified=False) is True


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """A real HTTP server on loopback serving tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_download_is_verified_then_kept(isolated, tiny_checkpoint, http_server):
    root, base = http_server
    (root / "GFPGANv1.pth").write_bytes(tiny_checkpoint.read_bytes())
    spec = dataclasses.replace(get_spec("v1"), url=f"{base}/GFPGANv1.pth", sha256=sha256(tiny_checkpoint))
    path = resolve_mod._download_url(spec, progress=False)
    assert path == isolated / "home" / "models" / "GFPGANv1.pth"
    assert sha256(path) == spec.sha256
    assert not list(path.parent.glob("*.part"))


def test_url_download_with_wrong_sha_leaves_nothing(isolated, tiny_checkpoint, http_server):
    root, base = http_server
    (root / "GFPGANv1.pth").write_bytes(b"tampered" + tiny_checkpoint.read_bytes())
    spec = dataclasses.replace(get_spec("v1"), url=f"{base}/GFPGANv1.pth", sha256=sha256(tiny_checkpoint))
    with pytest.raises(ChecksumMismatchError, match="discarded"):
        resolve_mod._download_url(spec, progress=False)
    assert list((isolated / "home" / "models").iterdir()) == []


def test_loading_from_the_hugging_face_cache_offline(isolated, tiny_checkpoint):
    cache = isolated / "hf-cache"
    link = put_in_hf_cache(cache, "Gourieff/ReActor", "models/facerestore_models/GFPGANv1.4.pth",
                           tiny_checkpoint.read_bytes(), repo_type="dataset")
    with pytest.raises(ChecksumMismatchError):  # random weights are not the published v1.4
        load_model("v1.4")
    model, info = load_model_with_info("v1.4", allow_unverified=True)
    assert info.source == "hf-cache" and Path(info.path) == link
    assert torch.equal(model.state_dict()["final_linear.bias"], read_state_dict(tiny_checkpoint)["final_linear.bias"])


def test_configured_hub_repo_comes_first(isolated, tiny_checkpoint, monkeypatch):
    put_in_hf_cache(isolated / "hf-cache", "my-org/face-weights", "GFPGANv1.pth", tiny_checkpoint.read_bytes())
    monkeypatch.setenv("GFP_HUB_REPO", "my-org/face-weights")
    resolved = resolve_weights("v1")
    assert resolved.source == "hf-cache" and "models--my-org--face-weights" in str(resolved.path)


def test_model_folder_wins_over_hf_cache(isolated, tiny_checkpoint):
    put_in_hf_cache(isolated / "hf-cache", "my-org/face-weights", "GFPGANv1.pth", tiny_checkpoint.read_bytes())
    folder = isolated / "models"
    folder.mkdir()
    (folder / "GFPGANv1.pth").write_bytes(tiny_checkpoint.read_bytes())
    add_model_dir(folder)
    assert resolve_weights("v1").source == "folder"


# --- safe loading ---------------------------------------------------------------------------

class _RunsCodeWhenUnpickled:
    """Unpickling this calls ``open(marker, 'w')``: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_crafted_pickle_is_refused_without_running(tmp_path, writer):
    marker = tmp_path / "code-ran"
    payload = {"params_ema": {"conv.weight": torch.zeros(1)}, "evil": _RunsCodeWhenUnpickled(marker)}
    path = tmp_path / "GFPGANv1.4.pth"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_model(path)
    assert not marker.exists()
    # the file really is malicious: a plain unpickler runs its code
    if writer == "pickle":
        pickle.loads(path.read_bytes())
        assert marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02garbage"])
def test_corrupt_checkpoints_get_a_clear_error(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(UnsupportedCheckpointError, match="broken.pth"):
        load_model(path)


def test_truncated_checkpoint(tmp_path, tiny_checkpoint):
    path = tmp_path / "half.pth"
    data = tiny_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedCheckpointError):
        load_model(path)


def test_not_a_gfpgan_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(UnsupportedCheckpointError, match="not a face-restoration checkpoint"):
        load_model(path)


@pytest.mark.parametrize("layout", ["params_ema", "params", "bare", "module-prefix"])
def test_state_dict_layouts(tmp_path, tiny_checkpoint, layout):
    state = read_state_dict(tiny_checkpoint)
    obj = {"params_ema": state, "params": state, "bare": state,
           "module-prefix": {f"module.{k}": v for k, v in state.items()}}[layout]
    if layout in ("params_ema", "params"):
        obj = {layout: state}
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    model = load_model(path)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_params_ema_is_preferred_over_params(tmp_path, tiny_checkpoint):
    state = read_state_dict(tiny_checkpoint)
    other = {k: v + 1 for k, v in state.items()}
    path = tmp_path / "both.pth"
    torch.save({"params": other, "params_ema": state}, path)
    assert all(torch.equal(v, read_state_dict(path)[k]) for k, v in state.items())


# --- architecture detection -----------------------------------------------------------------

@pytest.mark.parametrize("arch, kwargs", [
    ("GFPGANv1Clean", dict(out_size=512, channel_multiplier=2, narrow=1, sft_half=True, different_w=True)),
    ("GFPGANv1", dict(out_size=512, channel_multiplier=1, narrow=1, sft_half=True, different_w=True)),
    ("GFPGANv1Clean", dict(out_size=128, channel_multiplier=1, narrow=0.5, sft_half=False, different_w=False)),
    ("GFPGANv1", dict(out_size=64, channel_multiplier=2, narrow=0.25, sft_half=True, different_w=False)),
])
def test_architecture_is_detected_from_keys(arch, kwargs):
    from gfp_core.weights import build_architecture

    net = build_architecture(arch, kwargs)
    detected_arch, detected = recognise_architecture(net.state_dict())
    assert detected_arch == arch
    for key, value in kwargs.items():
        assert detected[key] == value, key
    build_architecture(detected_arch, detected).load_state_dict(net.state_dict(), strict=True)


def test_official_configurations_have_the_published_sizes():
    from gfp_core.weights import build_architecture

    for name, params in (("v1.4", 86_444_252), ("v1", 76_207_244)):
        spec = get_spec(name)
        net = build_architecture(spec.arch, spec.arch_kwargs)
        assert sum(p.numel() for p in net.parameters()) == params
        assert len(net.state_dict()) == 285


# --- conversion -----------------------------------------------------------------------------

def test_pth_to_safetensors_round_trips_bit_exactly(tmp_path, tiny_checkpoint):
    original = read_state_dict(tiny_checkpoint)
    st = convert_checkpoint(tiny_checkpoint, tmp_path / "model.safetensors")
    back = convert_checkpoint(st, tmp_path / "back.pth")
    for path in (st, back):
        loaded = read_state_dict(path)
        assert loaded.keys() == original.keys()
        for k, v in original.items():
            assert loaded[k].dtype == v.dtype and torch.equal(loaded[k], v), k
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        outputs = [load_model(p)(x)[0] for p in (tiny_checkpoint, st, back)]
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_safetensors_metadata_and_no_overwrite(tmp_path, tiny_checkpoint):
    from safetensors import safe_open

    st = convert_checkpoint(tiny_checkpoint, tmp_path / "m.safetensors")
    with safe_open(str(st), framework="pt") as f:
        meta = f.metadata()
    assert meta["architecture"] == "GFPGANv1Clean" and meta["source_sha256"] == sha256(tiny_checkpoint)
    before = st.read_bytes()
    with pytest.raises(Exception, match="already exists"):
        convert_checkpoint(tiny_checkpoint, st)
    assert st.read_bytes() == before


def test_fp16_weights_keep_their_dtype(tmp_path, tiny_checkpoint):
    half = {k: v.half() if v.is_floating_point() else v for k, v in read_state_dict(tiny_checkpoint).items()}
    src = write_state_dict(half, tmp_path / "half.pth")
    st = convert_checkpoint(src, tmp_path / "half.safetensors")
    assert all(v.dtype == half[k].dtype and torch.equal(v, half[k]) for k, v in read_state_dict(st).items())


def test_model_folder_limited_to_kinds(isolated, tiny_checkpoint):
    detection = isolated / "facedetection"
    detection.mkdir()
    (detection / "GFPGANv1.pth").write_bytes(tiny_checkpoint.read_bytes())
    add_model_dir(detection, kinds=["detection"])
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights("v1")  # a restoration model is not looked for among detectors
    assert str(detection) not in str(err.value)
    assert str(detection) in str(pytest.raises(WeightsNotFoundError, resolve_weights, "retinaface_resnet50").value)
