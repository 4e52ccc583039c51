"""RestoreFormer, RestoreFormer++ and CodeFormer: recognised from their keys in each release format,
loaded safely, and giving the reference implementations' outputs on seeded random weights.

References: RestoreFormer, the official ``gfpgan`` package's ``restoreformer_arch`` (what the GFPGAN
release file runs with); CodeFormer, the official ``codeformer_arch`` as PyPI ``codeformer-pip``
packages it. RestoreFormer++ has no installable reference: it is checked against ``gfpgan``'s
RestoreFormer blocks put together in RestoreFormer++'s published configuration (4 heads, decoder
attention at 16² and 32², the 32² level attending to the encoder's features at that level).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from official import load_official_codeformer, load_official_restoreformer

from gfp_core.errors import UnsupportedCheckpointError
from gfp_core.weights import get_spec, load_model_with_info, write_state_dict
from gfp_core.weights.architectures import detect_architecture

SIZE = 512


def _faces(seed: int, n: int = 1, size: int = SIZE) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def official_restoreformer():
    torch.manual_seed(11)
    return load_official_restoreformer().RestoreFormer().eval()


@pytest.fixture(scope="module")
def official_codeformer():
    torch.manual_seed(12)
    net = load_official_codeformer().CodeFormer(dim_embd=512, codebook_size=1024, n_head=8, n_layers=9,
                                                connect_list=["32", "64", "128", "256"])
    return net.eval()


class _OfficialRestoreFormerPlusPlus(torch.nn.Module):
    """gfpgan's RestoreFormer blocks in RestoreFormer++'s configuration (configs/RestoreFormerPlusPlus.yaml:
    head_size 4, ex_multi_scale_num 1)."""

    def __init__(self) -> None:
        super().__init__()
        arch = load_official_restoreformer()
        base = arch.RestoreFormer(head_size=4)
        self.encoder, self.quantize = base.encoder, base.quantize
        self.quant_conv, self.post_quant_conv = base.quant_conv, base.post_quant_conv
        self.decoder = arch.MultiHeadDecoderTransformer(ch=64, out_ch=3, ch_mult=(1, 2, 2, 4, 4, 8), num_res_blocks=2,
                                                        attn_resolutions=(16, 32), in_channels=3, resolution=512,
                                                        z_channels=256, enable_mid=True, head_size=4)

    def forward(self, x):
        hs = self.encoder(x)
        quant, _, _ = self.quantize(self.quant_conv(hs["out"]))
        # the official decoder's rule: a level without '<block>_atten' features attends to '<block>'
        hs = {**hs, **{f"{k}_atten": v for k, v in hs.items() if k.startswith("block_") and f"{k}_atten" not in hs}}
        return self.decoder(self.post_quant_conv(quant), hs)


@pytest.fixture(scope="module")
def official_restoreformer_pp():
    torch.manual_seed(13)
    return _OfficialRestoreFormerPlusPlus().eval()


def _lightning_checkpoint(net: torch.nn.Module, path):
    """RestoreFormer++'s release format: a Lightning checkpoint, the network under 'vqvae.' and the
    training losses' tensors beside it."""
    state = {f"vqvae.{k}": v for k, v in net.state_dict().items()}
    state["loss.discriminator.main.0.weight"] = torch.randn(64, 3, 4, 4)
    torch.save({"epoch": 3, "global_step": 1000, "state_dict": state}, path)
    return path


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("fmt", ["params_ema.pth", "params.pth", "safetensors"])
def test_restoreformer_release_formats_match_official(official_restoreformer, tmp_path, fmt):
    state = official_restoreformer.state_dict()
    if fmt == "safetensors":
        path = write_state_dict(state, tmp_path / "RestoreFormer.safetensors")
    else:
        path = tmp_path / "RestoreFormer.pth"
        torch.save({fmt.split(".")[0]: state}, path)
    model, info = load_model_with_info(str(path), device="cpu", exact=True)
    assert info.arch == "RestoreFormer" and not info.verified
    x = _faces(1, size=128)  # any multiple of 32: a small face keeps this fast
    with torch.inference_mode():
        ours, extra = model(x, return_rgb=False, fidelity=0.3)
        ref = official_restoreformer(x)[0]
    assert extra is None
    assert _max_diff(ours, ref) < 1e-5


def test_restoreformer_plus_plus_lightning_checkpoint_matches_reference(official_restoreformer_pp, tmp_path):
    path = _lightning_checkpoint(official_restoreformer_pp, tmp_path / "RestoreFormer++.ckpt")
    model, info = load_model_with_info(str(path), device="cpu", exact=True)
    assert info.arch == "RestoreFormerPlusPlus"
    x = _faces(2, size=128)
    with torch.inference_mode():
        ours = model(x)[0]
        ref = official_restoreformer_pp(x)
    assert _max_diff(ours, ref) < 1e-5
    # the same weights as .safetensors, converted from the release file, give the same faces
    from gfp_core.weights import convert_checkpoint

    converted = convert_checkpoint(path, tmp_path / "rfpp.safetensors")
    again = load_model_with_info(str(converted), device="cpu", exact=True).module
    with torch.inference_mode():
        assert torch.equal(again(x)[0], ours)


def test_codeformer_matches_official_at_each_fidelity(official_codeformer, tmp_path):
    """fidelity is the official fidelity weight w (1.0 is checked through the engine below)."""
    path = tmp_path / "codeformer.pth"
    torch.save({"params_ema": official_codeformer.state_dict()}, path)
    model, info = load_model_with_info(str(path), device="cpu", exact=True)
    assert info.arch == "CodeFormer"
    x = _faces(3)
    for fidelity in (0.0, 0.7):
        with torch.inference_mode():
            ours = model(x, return_rgb=False, fidelity=fidelity)[0]
            ref = official_codeformer(x, w=fidelity, adain=True)[0]
        assert _max_diff(ours, ref) < 1e-5, fidelity


def test_codeformer_through_the_engine(official_codeformer, tmp_path):
    """Engine.restore_crops' path (uint8 crops in, uint8 out, fidelity passed on, cancellable)
    with no special case for CodeFormer."""
    from gfp_core.engine import restore_crops
    from gfp_core.image import faces_to_tensor, tensor_to_faces

    path = write_state_dict(official_codeformer.state_dict(), tmp_path / "codeformer.safetensors")
    model = load_model_with_info(str(path), device="cpu").module
    crops = np.random.default_rng(4).integers(0, 256, (1, SIZE, SIZE, 3), dtype=np.uint8)
    out = {w: restore_crops(model, crops, fidelity=w) for w in (0.0, 1.0)}
    with torch.inference_mode():
        ref = tensor_to_faces(official_codeformer(faces_to_tensor(crops), w=1.0, adain=True)[0])
    assert out[1.0].dtype == np.uint8 and out[1.0].shape == crops.shape
    assert np.abs(out[1.0].astype(int) - ref.astype(int)).max() <= 1
    assert not np.array_equal(out[0.0], out[1.0])  # fidelity reaches the network

    calls = []

    def stop():
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_crops(model, crops, fidelity=0.5, should_stop=stop)
    with pytest.raises(ValueError, match="fidelity"):
        restore_crops(model, crops, fidelity=1.5)


def test_gpen_and_unknown_files_are_named():
    gpen = {"ecd0.0.conv.weight": torch.zeros(1), "generator.style.1.weight": torch.zeros(1)}
    with pytest.raises(UnsupportedCheckpointError, match="GPEN"):
        detect_architecture(gpen, "GPEN-BFR-512.pth")
    with pytest.raises(UnsupportedCheckpointError, match="RestoreFormer"):
        detect_architecture({"foo.weight": torch.zeros(1)}, "x.pth")


def test_registry_entries():
    for name, filename, url in (
            ("codeformer", "codeformer.pth", "sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth"),
            ("RestoreFormer", "RestoreFormer.pth", "TencentARC/GFPGAN/releases/download/v1.3.4/RestoreFormer.pth"),
            ("rf++", "RestoreFormer++.ckpt", "RestoreFormerPlusPlus/releases/download/v1.0.0/RestoreFormer++.ckpt")):
        spec = get_spec(name)
        assert spec.kind == "restoration" and spec.filename == filename and spec.url.endswith(url)
        assert spec.sha256 is None  # no published value confirmed: never a guessed one
    assert get_spec("codeformer-v0.1.0.pth").name == "CodeFormer"  # ReActor's file name


def test_registry_name_builds_the_official_key_layout(official_codeformer, official_restoreformer):
    """A registry name's empty build has exactly the release files' keys and shapes (seeded random
    checkpoints, gfp_core.synthetic, are written from it)."""
    from gfp_core.synthetic import random_state_dict

    for name, official in (("CodeFormer", official_codeformer), ("RestoreFormer", official_restoreformer)):
        ours = random_state_dict(name)
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in official.state_dict().items()}


def test_cli_restores_with_a_restoreformer_file(tmp_path):
    """``python -m gfp_core restore --model FILE`` with a RestoreFormer release-format file."""
    import os
    import subprocess
    import sys

    from PIL import Image

    from gfp_core.synthetic import random_state_dict

    weights = tmp_path / "RestoreFormer.pth"
    torch.save({"params_ema": random_state_dict("RestoreFormer", seed=5)}, weights)
    crop = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(crop)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GFP_HOME": str(tmp_path / "home"), "GFP_MODEL_DIRS": ""}
    result = subprocess.run([sys.executable, "-m", "gfp_core", "restore", str(crop), "--aligned", "-m", str(weights),
                             "--fidelity", "0.5", "--device", "cpu", "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    restored = list((tmp_path / "out").rglob("*.png"))
    assert any("restored" in str(p) for p in restored), (restored, result.stderr)


def test_web_demo_offers_the_restorers_whose_weights_are_here(tmp_path, monkeypatch):
    from gfp_core.synthetic import random_state_dict
    from web.models import model_choices, model_title

    monkeypatch.setenv("GFP_MODEL_DIRS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("GFP_HOME", str(tmp_path / "home"))
    assert model_choices().names == ("v1.4", "v1.3", "v1.2", "v1")
    torch.save({"params_ema": random_state_dict("CodeFormer")}, tmp_path / "codeformer.pth")
    choices = model_choices()
    assert choices.names == ("v1.4", "v1.3", "v1.2", "v1", "CodeFormer")
    assert choices.check("CodeFormer") == "CodeFormer"
    assert model_title("CodeFormer") == "CodeFormer" and model_title("v1.4") == "GFPGAN v1.4"
