"""Background upsampling: Real-ESRGAN networks against basicsr, tiling, output sizes, registry loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gfp_core.archs import RRDBNet, SRVGGNetCompact
from gfp_core.background import (BackgroundUpsampler, lanczos, load_background_upsampler, output_size,
                                 upscale_background)
from gfp_core.errors import InvalidImageError, UnknownModelError, WeightsNotFoundError
from gfp_core.weights import add_model_dir, build_architecture, get_spec
from official import load_official

SMALL_RRDB = dict(num_feat=16, num_block=2, num_grow_ch=8)


@pytest.fixture(scope="module")
def basicsr_archs():
    load_official()  # patches torchvision for basicsr 1.4.2
    from basicsr.archs.rrdbnet_arch import RRDBNet as OfficialRRDBNet
    from basicsr.archs.srvgg_arch import SRVGGNetCompact as OfficialSRVGG

    return OfficialRRDBNet, OfficialSRVGG


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A 96×120 crop of a real photo (face, hair, suit, background)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40:136, 150:270])


def calibrated(net: RRDBNet, image: np.ndarray) -> RRDBNet:
    """Rescale the last conv of a random-weight RRDBNet so that its output on ``image`` has mean 0.5 and
    std 0.2 per channel: a fresh one's output is near 0 and would mostly be clamped away."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = net(x)[0].flatten(1)
        gain = 0.2 / y.std(1)
        net.conv_last.weight.mul_(gain.view(-1, 1, 1, 1))
        net.conv_last.bias.copy_((net.conv_last.bias - y.mean(1)) * gain + 0.5)
    return net.eval()


def small_rrdb(scale: int, image: np.ndarray, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    return calibrated(RRDBNet(scale=scale, **SMALL_RRDB), image)


def small_srvgg(seed: int = 0) -> SRVGGNetCompact:
    torch.manual_seed(seed)
    return SRVGGNetCompact(num_feat=16, num_conv=4, upscale=4).eval()


# --- architectures against basicsr ----------------------------------------------------------

@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_matches_basicsr(basicsr_archs, scale):
    official_cls, _ = basicsr_archs
    torch.manual_seed(scale)
    official = official_cls(3, 3, scale=scale, **SMALL_RRDB).eval()
    ours = RRDBNet(scale=scale, **SMALL_RRDB).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = official(x), ours(x)
    assert got.shape == (2, 3, 24 * scale, 32 * scale)
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("act_type", ["prelu", "leakyrelu"])
def test_srvgg_matches_basicsr(basicsr_archs, act_type):
    _, official_cls = basicsr_archs
    torch.manual_seed(5)
    official = official_cls(num_feat=16, num_conv=4, upscale=4, act_type=act_type).eval()
    ours = SRVGGNetCompact(num_feat=16, num_conv=4, upscale=4, act_type=act_type).eval()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.rand(1, 3, 20, 28, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = official(x), ours(x)
    assert got.shape == (1, 3, 80, 112)
    assert (got - expected).abs().max().item() <= 1e-5


def test_registry_architectures_have_the_official_layout(basicsr_archs):
    """Full-size models (built on the meta device: shapes only) have the official keys and shapes."""
    official_rrdb, official_srvgg = basicsr_archs
    pairs = (("realesrgan_x2plus", lambda: official_rrdb(3, 3, scale=2, num_feat=64, num_block=23, num_grow_ch=32)),
             ("realesr_general_x4v3", lambda: official_srvgg(3, 3, num_feat=64, num_conv=32, upscale=4,
                                                             act_type="prelu")))
    for name, build_official in pairs:
        spec = get_spec(name)
        with torch.device("meta"):
            ours = build_architecture(spec.arch, spec.arch_kwargs).state_dict()
            official = build_official().state_dict()
        assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in official.items()}


# --- tiling, sizes, dtypes ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["rrdb_x2", "srvgg_x4"])
def test_tiled_equals_whole_image(photo, kind):
    net = small_rrdb(2, photo) if kind == "rrdb_x2" else small_srvgg()
    whole = BackgroundUpsampler(net, tile=0).run(photo)
    tiled = BackgroundUpsampler(net, tile=32, tile_pad=10).run(photo)  # 3×4 tiles
    assert whole.shape == tiled.shape == (96 * net.scale, 120 * net.scale, 3)
    assert whole.std() > 20  # an image-like output, not one clamped to black or white
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 2
    # without enough context the seams show: the tolerance above means something
    if kind == "rrdb_x2":
        seamy = BackgroundUpsampler(net, tile=32, tile_pad=2).run(photo)
        assert np.abs(whole.astype(int) - seamy.astype(int)).max() > 2


def test_output_size_is_exact(photo):
    odd = photo[:37, :53]  # odd sizes: RRDBNet ×2 needs even ones, padded and cropped off again
    x2 = BackgroundUpsampler(small_rrdb(2, photo), tile=16)
    x4 = BackgroundUpsampler(small_srvgg(), tile=16)
    native = x2.run(odd)
    assert native.shape == (74, 106, 3) and native.dtype == np.uint8
    np.testing.assert_array_equal(x2.upsample(odd, 2), native)  # native scale: no resampling
    assert x4.upsample(odd, 2).shape == (74, 106, 3)  # ×4 then Lanczos down
    assert x2.upsample(odd, 3).shape == (111, 159, 3)  # ×2 then Lanczos up
    assert x4.upsample(odd, 1.5).shape == (*output_size(odd.shape, 1.5), 3) == (56, 80, 3)


def test_float_input_returns_float(photo):
    up = BackgroundUpsampler(small_rrdb(2, photo), tile=48)
    as_float = up.upsample(photo.astype(np.float32) / 255, 2)
    assert as_float.dtype == np.float32 and as_float.shape == (192, 240, 3)
    assert 0 <= as_float.min() and as_float.max() <= 1
    assert np.abs(as_float * 255 - up.upsample(photo, 2)).max() <= 1  # same result, unrounded
    resized = BackgroundUpsampler(small_srvgg(), tile=48).upsample(photo.astype(np.float32) / 255, 2)
    assert resized.dtype == np.float32 and 0 <= resized.min() and resized.max() <= 1


def test_lanczos_and_shared_interface(photo):
    plain = upscale_background(photo, 2)
    assert plain.shape == (192, 240, 3) and plain.dtype == np.uint8
    np.testing.assert_array_equal(plain, lanczos(photo, 2))
    same = lanczos(photo, 1)
    np.testing.assert_array_equal(same, photo)
    assert same is not photo
    as_float = lanczos(photo.astype(np.float64) / 255, 1.5)
    assert as_float.dtype == np.float32 and as_float.shape == (144, 180, 3)
    up = BackgroundUpsampler(small_srvgg(), tile=0)
    np.testing.assert_array_equal(upscale_background(photo, 2, up), up.upsample(photo, 2))
    with pytest.raises(InvalidImageError):
        lanczos(photo[..., :2], 2)
    with pytest.raises(ValueError):
        up.upsample(photo, 0)


# --- registry and loading -------------------------------------------------------------------


def test_registry_entries():
    x2 = get_spec("realesrgan_x2plus")
    assert (x2.kind, x2.arch, x2.filename) == ("background", "RRDBNet", "RealESRGAN_x2plus.pth")
    assert x2.sha256 == "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb"
    assert x2.url == "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"
    assert x2.arch_kwargs["scale"] == 2 and x2.arch_kwargs["num_block"] == 23
    assert x2.license == "BSD-3-Clause (xinntao/Real-ESRGAN)"
    x4 = get_spec("realesr-general-x4v3.pth")
    assert (x4.name, x4.kind, x4.arch) == ("realesr_general_x4v3", "background", "SRVGGNetCompact")
    assert x4.sha256 == "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292"
    assert x4.url == "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0/realesr-general-x4v3.pth"
    assert dict(x4.arch_kwargs).items() >= {"num_conv": 32, "upscale": 4, "act_type": "prelu"}.items()


def test_load_x2plus_from_model_folder(isolated, monkeypatch, basicsr_archs):
    """An official-format checkpoint ({'params_ema': …} of basicsr's RRDBNet) found through GFP_MODEL_DIRS."""
    official_rrdb, _ = basicsr_archs
    folder = isolated / "models"
    folder.mkdir()
    torch.manual_seed(11)
    state = official_rrdb(3, 3, scale=2, num_feat=64, num_block=23, num_grow_ch=32).state_dict()
    torch.save({"params_ema": state}, folder / "RealESRGAN_x2plus.pth")
    monkeypatch.setenv("GFP_MODEL_DIRS", str(folder))

    up = load_background_upsampler("realesrgan_x2plus", device="cpu", tile=200, tile_pad=12,
                                   allow_unverified=True)  # seeded random weights under the official name
    assert isinstance(up.model, RRDBNet) and up.scale == 2 and up.multiple == 2
    assert (up.tile, up.tile_pad, up.device.type, up.dtype) == (200, 12, "cpu", torch.float32)
    assert up.info.path == str(folder / "RealESRGAN_x2plus.pth") and up.info.verified is False
    loaded = up.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_load_general_x4v3_from_added_folder(isolated):
    folder = isolated / "comfy"
    folder.mkdir()
    torch.manual_seed(12)
    net = SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4, act_type="prelu")
    torch.save({"params": net.state_dict()}, folder / "realesr-general-x4v3.pth")
    add_model_dir(folder)

    up = load_background_upsampler("realesr_general_x4v3", device="cpu", tile=0, pre_pad=0,
                                   allow_unverified=True)
    assert up.scale == 4 and up.multiple == 1
    image = np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    expected = (expected[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    got = up.upsample(image, 4)
    assert got.shape == (32, 40, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_missing_weights_offline(isolated):
    with pytest.raises(WeightsNotFoundError) as err:
        load_background_upsampler("realesrgan_x2plus", device="cpu")
    assert "RealESRGAN_x2plus.pth" in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_not_a_background_model(isolated):
    with pytest.raises(UnknownModelError, match="realesrgan_x2plus"):
        load_background_upsampler("v1.4")
