"""The training-only networks (discriminators, ArcFace) against the official implementation.

Each official model is built with a fixed seed, its weights are loaded into ours with
``strict=True``, and both are run in eval mode on the same input.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from gfp_core.archs import FacialComponentDiscriminator, ResNetArcFace, StyleGAN2Discriminator
from gfp_core.archs.arcface import BasicBlock
from official import load_official

ATOL = 1e-5


def transfer(official: nn.Module, ours: nn.Module) -> None:
    """Same keys, and each state dict loads strictly into the other model."""
    official_sd, ours_sd = official.state_dict(), ours.state_dict()
    assert set(official_sd) == set(ours_sd)
    ours.load_state_dict(official_sd, strict=True)
    official.load_state_dict(ours.state_dict(), strict=True)


def perturb_biases(net: nn.Module, std: float = 0.1) -> None:
    """Fresh StyleGAN2 layers start with zero biases; give them values so the bias path is tested."""
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, std)


def randomise_norms(net: nn.Module) -> None:
    """Non-trivial BatchNorm statistics/affines and PReLU slopes, so eval-mode mistakes show."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            elif isinstance(m, nn.PReLU):
                m.weight.uniform_(0.05, 0.5)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.mark.parametrize("kwargs, batch", [
    (dict(out_size=512), 2),  # the GFPGAN training configuration
    (dict(out_size=256, channel_multiplier=1, narrow=0.5, stddev_group=2), 4),  # several stddev groups
])
def test_stylegan2_discriminator_matches_official(kwargs: dict, batch: int) -> None:
    official_cls = load_official().StyleGAN2Discriminator
    torch.manual_seed(0)
    official = official_cls(**kwargs)
    perturb_biases(official)
    ours = StyleGAN2Discriminator(**kwargs)
    transfer(official, ours)

    x = torch.randn(batch, 3, kwargs["out_size"], kwargs["out_size"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = official.eval()(x), ours.eval()(x)
    assert got.shape == (batch, 1)
    assert max_diff(got, expected) <= ATOL


def test_stylegan2_discriminator_rejects_bad_batch() -> None:
    net = StyleGAN2Discriminator(out_size=8, narrow=1 / 64)
    with pytest.raises(ValueError):
        net(torch.randn(6, 3, 8, 8))  # group 4 does not divide 6


def test_facial_component_discriminator_matches_official() -> None:
    official_cls = load_official().FacialComponentDiscriminator
    torch.manual_seed(0)
    official = official_cls()
    perturb_biases(official)
    ours = FacialComponentDiscriminator()
    transfer(official, ours)

    x = torch.randn(3, 3, 80, 80, generator=torch.Generator().manual_seed(1))
    official.eval(), ours.eval()
    with torch.no_grad():
        expected_out, expected_feats = official(x, return_feats=True)
        got_out, got_feats = ours(x, return_feats=True)
        plain_out, no_feats = ours(x)

    assert got_out.shape == (3, 1, 20, 20)
    assert max_diff(got_out, expected_out) <= ATOL
    assert [f.shape for f in got_feats] == [(3, 128, 40, 40), (3, 256, 20, 20)]
    assert len(got_feats) == len(expected_feats)
    for got, expected in zip(got_feats, expected_feats):
        assert max_diff(got, expected) <= ATOL
    assert no_feats is None
    assert torch.equal(plain_out, got_out)


@pytest.mark.parametrize("layers, use_se", [((2, 2, 2, 2), False), ((1, 1, 1, 1), True)])
def test_arcface_matches_official(layers: tuple[int, ...], use_se: bool) -> None:
    official_cls = load_official().ResNetArcFace
    torch.manual_seed(0)
    official = official_cls(block="IRBlock", layers=layers, use_se=use_se)
    randomise_norms(official)
    ours = ResNetArcFace(block="IRBlock", layers=layers, use_se=use_se)
    transfer(official, ours)

    x = torch.rand(2, 1, 128, 128, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected, got = official.eval()(x), ours.eval()(x)
    assert got.shape == (2, 512)
    assert max_diff(got, expected) <= ATOL


def test_arcface_basic_block_matches_official() -> None:
    load_official()
    from gfpgan.archs.arcface_arch import BasicBlock as OfficialBasicBlock

    def shortcut() -> nn.Module:
        return nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, bias=False), nn.BatchNorm2d(64))

    torch.manual_seed(0)
    official = OfficialBasicBlock(32, 64, stride=2, downsample=shortcut())
    randomise_norms(official)
    ours = BasicBlock(32, 64, stride=2, downsample=shortcut())
    transfer(official, ours)

    x = torch.randn(2, 32, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = official.eval()(x), ours.eval()(x)
    assert max_diff(got, expected) <= ATOL


def test_arcface_rejects_unknown_block() -> None:
    with pytest.raises(ValueError):
        ResNetArcFace(block="Bottleneck")


@pytest.mark.parametrize("clean", [True, False])
def test_stylegan2_prior_generator_matches_official(clean):
    """The generative prior alone (the training's starting point) samples the same faces."""
    load_official()  # patches basicsr before anything of it is imported
    import basicsr.archs.stylegan2_arch as official_original
    from gfpgan.archs.stylegan2_clean_arch import StyleGAN2GeneratorClean as OfficialClean

    from gfp_core.archs.stylegan2_clean import StyleGAN2GeneratorClean
    from gfp_core.archs.stylegan2_original import StyleGAN2Generator

    torch.manual_seed(0)
    kwargs = dict(out_size=64, num_style_feat=64, num_mlp=2, channel_multiplier=1, narrow=0.125)
    official = (OfficialClean if clean else official_original.StyleGAN2Generator)(**kwargs).eval()
    perturb_biases(official)
    with torch.no_grad():
        for name, p in official.named_parameters():
            if name.endswith(".weight") and p.numel() == 1:
                p.fill_(0.3)
    ours = (StyleGAN2GeneratorClean if clean else StyleGAN2Generator)(**kwargs).eval()
    transfer(official, ours)
    z = torch.randn(3, 64)
    with torch.inference_mode():
        ref, _ = official([z], randomize_noise=False)
        assert max_diff(ours(z), ref) <= ATOL
        torch.manual_seed(9)
        ref_noisy, _ = official([z], randomize_noise=True)
        torch.manual_seed(9)
        assert max_diff(ours(z, randomize_noise=True), ref_noisy) <= ATOL
