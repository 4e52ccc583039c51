"""GFPGAN and its StyleGAN2 generators against the official implementation, in every configuration
the official code builds, and the generators' sampling API (style lists, truncation, mixing, noise).

The official model is built with a fixed seed, its biases and noise strengths are given non-zero
values (fresh StyleGAN2 layers have them at zero), and its state dict is loaded into ours with
``strict=True``.
"""
from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from gfp_core.archs import GFPGANv1, GFPGANv1Clean
from gfp_core.archs.stylegan2_clean import StyleGAN2GeneratorClean
from gfp_core.archs.stylegan2_ops import fused_leaky_relu
from gfp_core.archs.stylegan2_original import StyleGAN2Generator
from official import _cpu_fused_leaky_relu, load_official

ATOL = 1e-5


def kernel_fused_leaky_relu(input, bias, negative_slope=0.2, scale=2 ** 0.5):
    """The official CUDA kernel ``fused_bias_act`` (act 3, grad 0), element by element: element ``i``
    of the contiguous input gets ``bias[(i // step_b) % size_b]``, ``step_b`` = product of dims 2…"""
    x = input.contiguous().reshape(-1)
    step_b = math.prod(input.shape[2:])
    index = (torch.arange(x.numel()) // step_b) % bias.numel()
    y = x + bias.reshape(-1)[index]
    return (torch.where(y > 0, y, y * negative_slope) * scale).view(input.shape)


@pytest.fixture
def official_kernel(monkeypatch):
    """The official modules with the kernel's bias indexing (the test shim handles only inputs whose
    dim 1 is the channel axis, and crashes on ``[B, L, C]`` style codes as the CPU fallback of
    rosinality's code does). Yields the official architectures (calling ``load_official`` again
    would put the shim back)."""
    official_archs = load_official()
    import basicsr.archs.stylegan2_arch as stylegan2_arch
    import basicsr.ops.fused_act.fused_act as fused_act

    monkeypatch.setattr(fused_act, "fused_leaky_relu", kernel_fused_leaky_relu)
    monkeypatch.setattr(stylegan2_arch, "fused_leaky_relu", kernel_fused_leaky_relu)
    return official_archs


def perturb(net: nn.Module, noise_strength: float = 0.3) -> nn.Module:
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.2)
            elif name.endswith(".weight") and param.numel() == 1:  # StyleGAN2 noise strengths
                param.fill_(noise_strength)
    return net.eval()


def transfer(official: nn.Module, ours: nn.Module) -> nn.Module:
    ours.load_state_dict(official.state_dict(), strict=True)
    return ours.eval()


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


# --- the fused bias + leaky ReLU ---

@pytest.mark.parametrize("shape", [(3, 16), (2, 16, 5, 5), (1, 8, 16), (3, 8, 16), (2, 5, 4, 3), (16,)])
def test_fused_leaky_relu_indexes_bias_as_the_official_kernel(shape):
    g = torch.Generator().manual_seed(0)
    x, bias = torch.randn(*shape, generator=g), torch.randn(16, generator=g)
    expected = kernel_fused_leaky_relu(x, bias)
    assert max_diff(fused_leaky_relu(x, bias), expected) <= 1e-6
    if len(shape) >= 2 and shape[1] == 16:  # channels on dim 1: also the per-channel broadcast of the shim
        assert max_diff(_cpu_fused_leaky_relu(x, bias), expected) <= 1e-6


# --- whole GFPGAN models in the official configurations ---

OFFICIAL_TEST = dict(out_size=32, num_style_feat=512, channel_multiplier=1, num_mlp=8, narrow=1, sft_half=True)
SMALL = dict(out_size=64, num_style_feat=32, channel_multiplier=1, num_mlp=2, narrow=0.25)
CONFIGS = [
    # the official tests (tests/test_gfpgan_arch.py): a mapping network, one w or one per layer
    *[dict(OFFICIAL_TEST, input_is_latent=False, different_w=dw) for dw in (False, True)],
    # every combination of the latent switches, small; SFT on all channels once
    *[dict(SMALL, input_is_latent=lat, different_w=dw, sft_half=True) for lat in (False, True) for dw in (False, True)],
    dict(SMALL, input_is_latent=True, different_w=True, sft_half=False),
    # published layout (w per layer, CS-SFT) at 128 px, narrow
    dict(out_size=128, num_style_feat=64, channel_multiplier=2, num_mlp=2, narrow=0.25, input_is_latent=True,
         different_w=True, sft_half=True),
]


def _config_id(kw: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in kw.items() if k in ("out_size", "input_is_latent", "different_w",
                                                               "sft_half", "narrow"))


@pytest.mark.parametrize("arch", ["clean", "original"])
@pytest.mark.parametrize("kwargs", CONFIGS, ids=_config_id)
def test_gfpgan_matches_official_in_every_configuration(official_kernel, arch, kwargs):
    official_archs = official_kernel
    torch.manual_seed(0)
    if arch == "clean":
        official = official_archs.GFPGANv1Clean(decoder_load_path=None, fix_decoder=False, **kwargs)
        ours = GFPGANv1Clean(**kwargs)
    else:
        official = official_archs.GFPGANv1(decoder_load_path=None, fix_decoder=False, lr_mlp=0.01,
                                           resample_kernel=(1, 3, 3, 1), **kwargs)
        ours = GFPGANv1(lr_mlp=0.01, resample_kernel=(1, 3, 3, 1), **kwargs)
    transfer(perturb(official), ours)
    size = kwargs["out_size"]
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        ref, ref_rgbs = official(x, return_rgb=True, randomize_noise=False)
        img, rgbs = ours(x, return_rgb=True, randomize_noise=False)
        assert max_diff(img, ref) <= ATOL
        assert len(rgbs) == len(ref_rgbs) and all(max_diff(a, b) <= ATOL for a, b in zip(rgbs, ref_rgbs))
        torch.manual_seed(4)
        ref_noisy, _ = official(x, return_rgb=False, randomize_noise=True)
        torch.manual_seed(4)
        noisy, _ = ours(x, return_rgb=False, randomize_noise=True)
        assert max_diff(noisy, ref_noisy) <= ATOL
    assert max_diff(noisy, img) > 1e-4  # the noise strengths are non-zero: noise really mattered


# --- the generators' sampling API ---

GEN = dict(out_size=64, num_style_feat=64, num_mlp=3, channel_multiplier=1, narrow=0.25)


def _generators(kind: str):
    """(official, ours) with shared weights: the prior alone, or the SFT decoder GFPGAN uses."""
    load_official()
    import basicsr.archs.stylegan2_arch as basicsr_stylegan2
    from gfpgan.archs.gfpganv1_arch import StyleGAN2GeneratorSFT
    from gfpgan.archs.gfpganv1_clean_arch import StyleGAN2GeneratorCSFT
    from gfpgan.archs.stylegan2_clean_arch import StyleGAN2GeneratorClean as OfficialClean

    torch.manual_seed(0)
    official = {
        "clean": lambda: OfficialClean(**GEN),
        "original": lambda: basicsr_stylegan2.StyleGAN2Generator(**GEN),
        "clean-sft": lambda: StyleGAN2GeneratorCSFT(**GEN, sft_half=True),
        "original-sft": lambda: StyleGAN2GeneratorSFT(**GEN, sft_half=True),
    }[kind]()
    ours = (StyleGAN2GeneratorClean if kind.startswith("clean") else StyleGAN2Generator)(**GEN)
    return perturb(official), transfer(official, ours)


def _conditions(g: nn.Module) -> list[torch.Tensor]:
    """Scale/shift maps for the first two octaves (fewer levels than the generator has, as GFPGAN
    may give), covering half of each layer's channels."""
    gen = torch.Generator().manual_seed(2)
    maps = []
    for res in (8, 16):
        ch = g.channels[str(res)] // 2
        maps += [1 + 0.3 * torch.randn(2, ch, res, res, generator=gen), 0.3 * torch.randn(2, ch, res, res, generator=gen)]
    return maps


def _same(official, ours, call, seed: int = 11, sft: bool = False, conditions=None):
    """Run ``call(model, extra)`` on both with the same torch and Python seeds; compare image and latent."""
    extra_official = (conditions,) if sft else ()
    extra_ours = dict(conditions=conditions, sft_half=True) if sft else {}
    with torch.inference_mode():
        torch.manual_seed(seed)
        random.seed(seed)
        ref_img, ref_latent = call(official, extra_official, {})
        torch.manual_seed(seed)
        random.seed(seed)
        img, latent = call(ours, (), extra_ours)
    assert max_diff(img, ref_img) <= ATOL
    assert (latent is None) == (ref_latent is None)
    if latent is not None:
        assert max_diff(latent, ref_latent) <= ATOL
    return img, latent


@pytest.mark.parametrize("kind", ["clean", "original", "clean-sft", "original-sft"])
def test_generator_sampling_matches_official(kind):
    official, ours = _generators(kind)
    sft = kind.endswith("sft")
    conditions = _conditions(ours) if sft else None
    C, L = GEN["num_style_feat"], ours.num_latent
    g = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(2, C, generator=g), torch.randn(2, C, generator=g)
    w_layers = torch.randn(2, L, C, generator=g)
    same = lambda call, **kw: _same(official, ours, call, sft=sft, conditions=conditions, **kw)  # noqa: E731

    # one z, stored noise, latents returned: [B, num_latent, C], the same w on every layer
    img, latent = same(lambda m, a, k: m([z1], *a, randomize_noise=False, return_latents=True, **k))
    assert latent.shape == (2, L, C) and torch.equal(latent[:, 0], latent[:, -1])
    # fresh noise under the same seed
    noisy, _ = same(lambda m, a, k: m([z1], *a, randomize_noise=True, **k))
    assert max_diff(noisy, img) > 1e-4
    # noise maps passed in (make_noise draws them the same way)
    same(lambda m, a, k: m([z1], *a, noise=m.make_noise(), return_latents=True, **k))
    # truncation towards the mean latent (same draws: same mean)
    same(lambda m, a, k: m([z1], *a, randomize_noise=False, truncation=0.6, truncation_latent=m.mean_latent(256),
                           return_latents=True, **k))
    # style mixing at a given layer, and at a random one (Python's random, as the official code)
    _, mixed = same(lambda m, a, k: m([z1, z2], *a, randomize_noise=False, inject_index=3, return_latents=True,
                                      **k))
    assert torch.equal(mixed[:, 2], mixed[:, 0]) and not torch.equal(mixed[:, 3], mixed[:, 0])
    same(lambda m, a, k: m([z1, z2], *a, randomize_noise=False, return_latents=True, **k))
    # mixing with truncation, as in the official tests
    same(lambda m, a, k: m([z1, z2], *a, randomize_noise=False, truncation=0.5, truncation_latent=z1[:1],
                           return_latents=True, **k))
    # w given directly: one for all layers, or one per layer
    same(lambda m, a, k: m([z2], *a, input_is_latent=True, randomize_noise=False, return_latents=True, **k))
    same(lambda m, a, k: m([w_layers], *a, input_is_latent=True, randomize_noise=False, return_latents=True, **k))
    # without return_latents the second output is None
    same(lambda m, a, k: m([z1], *a, randomize_noise=False, **k))
    with torch.inference_mode():
        assert max_diff(ours.get_latent(z1), official.get_latent(z1)) <= ATOL
        torch.manual_seed(3)
        ref_mean = official.mean_latent(64)
        torch.manual_seed(3)
        assert max_diff(ours.mean_latent(64), ref_mean) <= ATOL
        assert [n.shape for n in ours.make_noise()] == [n.shape for n in official.make_noise()]


def test_generator_shorthand_and_bad_arguments():
    _, ours = _generators("clean")
    z = torch.randn(1, GEN["num_style_feat"])
    with torch.inference_mode():
        image, latent = ours([z])
        assert latent is None
        assert torch.equal(ours(z), image)  # a bare tensor: the image alone, stored noise by default
        with pytest.raises(ValueError, match="truncation_latent"):
            ours([z], truncation=0.7)
        with pytest.raises(ValueError, match="one style code or two"):
            ours([z, z, z])
