"""Each training loss term against the official implementation (basicsr 1.4.2 / gfpgan 1.3.8) on the
same tensors, plus the degradation kernels and the eye/mouth boxes against their official versions."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from official import load_official

from train import losses
from train.components import ComponentBoxes
from train.degradations import gaussian_kernel

ATOL = 1e-5


@pytest.fixture(scope="module")
def official():
    ns = load_official()
    from basicsr.losses.basic_loss import L1Loss, PerceptualLoss
    from basicsr.losses.gan_loss import GANLoss, r1_penalty
    from gfpgan.models.gfpgan_model import GFPGANModel

    return SimpleNamespace(**vars(ns), L1Loss=L1Loss, PerceptualLoss=PerceptualLoss, GANLoss=GANLoss,
                           r1_penalty=r1_penalty, Model=GFPGANModel)


def faces(n: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 8, size // 8, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(low, size=size, mode="bicubic", align_corners=False).clamp(-1, 1)


def test_gan_losses_match_basicsr(official) -> None:
    pred = torch.randn(4, 1) * 3
    softplus = official.GANLoss("wgan_softplus", loss_weight=1.0)
    vanilla = official.GANLoss("vanilla", real_label_val=1.0, fake_label_val=0.0, loss_weight=1.0)
    for real in (True, False):
        assert torch.allclose(losses.softplus_gan(pred, real), softplus(pred, real, is_disc=True), atol=ATOL)
        patch = torch.randn(3, 1, 4, 4)
        assert torch.allclose(losses.bce_gan(patch, real), vanilla(patch, real, is_disc=True), atol=ATOL)


def test_r1_penalty_matches_basicsr(official) -> None:
    torch.manual_seed(0)
    d = official.StyleGAN2Discriminator(out_size=32, channel_multiplier=1, narrow=0.25)
    real = faces(4, 32).requires_grad_(True)
    ours = losses.r1_penalty(d(real), real)
    theirs = official.r1_penalty(d(real), real)
    assert ours.item() > 0
    assert torch.allclose(ours, theirs, rtol=1e-5)


def test_pixel_and_pyramid_losses_match_official(official) -> None:
    gt = faces(2, 64)
    g = torch.Generator().manual_seed(1)
    rgbs = [torch.rand(2, 3, s, s, generator=g) * 2 - 1 for s in (8, 16, 32, 64)]
    ns = SimpleNamespace(gt=gt, log_size=6)
    pyramid = official.Model.construct_img_pyramid(ns)
    l1 = official.L1Loss(loss_weight=1.0)
    expected = sum(l1(rgb, target) for rgb, target in zip(rgbs, pyramid))
    assert [p.shape[-1] for p in losses.image_pyramid(gt, 4)] == [8, 16, 32, 64]
    terms = losses.pyramid_terms(rgbs, gt)
    assert list(terms) == ["l_p_8", "l_p_16", "l_p_32", "l_p_64"]  # the names the trainer logs
    assert torch.allclose(sum(terms.values()), expected, atol=ATOL)


def test_perceptual_and_style_match_basicsr(official, tmp_path, monkeypatch) -> None:
    """basicsr reads VGG19 weights from experiments/pretrained_models/ relative to the working folder;
    the same random weights are given to ours as a weights path."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    weights = tmp_path / "experiments" / "pretrained_models" / "vgg19-dcbb9e9d.pth"
    weights.parent.mkdir(parents=True)
    torch.save(vgg19(weights=None).state_dict(), weights)
    monkeypatch.chdir(tmp_path)
    layer_weights = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
    ref = official.PerceptualLoss(layer_weights, vgg_type="vgg19", use_input_norm=True, range_norm=True,
                                  perceptual_weight=1.0, style_weight=50.0, criterion="l1")
    vgg = losses.VGGFeatures(list(layer_weights), str(weights))
    out, gt = faces(2, 64, seed=1).requires_grad_(True), faces(2, 64, seed=2)
    percep, style = losses.perceptual_and_style(vgg, out, gt, layer_weights)
    ref_percep, ref_style = ref(out, gt)
    assert percep.item() > 0 and style.item() > 0
    assert torch.allclose(percep, ref_percep, rtol=1e-4)
    assert torch.allclose(style * 50, ref_style, rtol=1e-4)


def test_gram_and_identity_input_match_official(official) -> None:
    feats = torch.randn(2, 8, 5, 7)
    assert torch.allclose(losses.gram(feats), official.Model._gram_mat(None, feats), atol=ATOL)
    img = faces(2, 64)
    assert torch.allclose(losses.grey_for_identity(img), official.Model.gray_resize_for_identity(None, img),
                          atol=ATOL)


def test_identity_loss_matches_official(official) -> None:
    from gfp_core.archs import ResNetArcFace

    torch.manual_seed(0)
    theirs = official.ResNetArcFace(block="IRBlock", layers=(2, 2, 2, 2), use_se=False).eval()
    ours = ResNetArcFace(block="IRBlock", layers=(2, 2, 2, 2), use_se=False).eval()
    ours.load_state_dict(theirs.state_dict())
    out, gt = faces(2, 64, seed=3), faces(2, 64, seed=4)
    m = official.Model
    expected = official.L1Loss()(theirs(m.gray_resize_for_identity(None, out)),
                                 theirs(m.gray_resize_for_identity(None, gt)).detach())
    assert expected.item() > 0
    assert torch.allclose(losses.identity_loss(ours, out, gt), expected, atol=ATOL)


def test_component_crops_and_style_loss_match_official(official) -> None:
    gt, out = faces(2, 512, seed=5), faces(2, 512, seed=6)
    loc = torch.tensor([[[150, 200, 230, 270], [280, 205, 360, 275], [190, 330, 320, 420]],
                        [[140, 190, 220, 260], [290, 195, 370, 265], [180, 340, 330, 430]]], dtype=torch.float32)
    ns = SimpleNamespace(opt={"network_g": {"out_size": 512}}, loc_left_eyes=loc[:, 0], loc_right_eyes=loc[:, 1],
                         loc_mouths=loc[:, 2], device="cpu", gt=gt, output=out)
    official.Model.get_roi_regions(ns, eye_out_size=80, mouth_out_size=120)
    left, right, mouth = losses.crop_components(out, loc)
    for ours, theirs in ((left, ns.left_eyes), (right, ns.right_eyes), (mouth, ns.mouths)):
        assert torch.allclose(ours, theirs, atol=ATOL)
    gt_crops = losses.crop_components(gt, loc)
    assert torch.allclose(gt_crops[2], ns.mouths_gt, atol=ATOL)

    torch.manual_seed(0)
    critic = official.FacialComponentDiscriminator()
    _, fake_feats = critic(left, return_feats=True)
    _, real_feats = critic(gt_crops[0], return_feats=True)
    l1, gram = official.L1Loss(), lambda x: official.Model._gram_mat(None, x)
    expected = l1(gram(fake_feats[0]), gram(real_feats[0])) * 0.5 + l1(gram(fake_feats[1]), gram(real_feats[1]))
    assert expected.item() > 0
    assert torch.allclose(losses.component_style_loss(fake_feats, real_feats), expected, rtol=1e-5)


@pytest.mark.parametrize("sx, sy, theta", [(2.0, 2.0, 0.0), (0.5, 7.0, 1.1), (9.0, 3.0, -2.5)])
def test_blur_kernel_matches_basicsr(official, sx: float, sy: float, theta: float) -> None:
    from basicsr.data.degradations import bivariate_Gaussian

    expected = bivariate_Gaussian(41, sx, sy, theta, isotropic=sx == sy)
    assert np.allclose(gaussian_kernel(41, sx, sy, theta), expected, atol=1e-10)


@pytest.mark.parametrize("flipped", [False, True])
def test_component_boxes_match_the_official_dataset(official, flipped: bool) -> None:
    from gfpgan.data.ffhq_degradation_dataset import FFHQDegradationDataset

    boxes = {"00000000": {"left_eye": np.array([190.5, 240.2, 20.0]), "right_eye": np.array([318.0, 241.0, 22.5]),
                          "mouth": np.array([256.0, 372.0, 58.0])}}
    ns = SimpleNamespace(components_list=copy.deepcopy(boxes), out_size=512, eye_enlarge_ratio=1.4)
    expected = FFHQDegradationDataset.get_component_coordinates(ns, 0, [flipped])
    ours = ComponentBoxes(boxes, ["a.png"], 512, 1.0, 1.4).locations(0, flipped)
    assert np.allclose(ours, torch.stack(expected).numpy(), atol=1e-4)


def test_ema_decay_default_is_the_official_one() -> None:
    from train.config import DEFAULTS

    assert math.isclose(DEFAULTS["train"]["ema_decay"], 0.5 ** (32 / (10 * 1000)))
