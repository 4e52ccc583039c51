"""GFPGAN's losses (paper §3.4), each a plain function of tensors.

    L = λ_l1·L1 + λ_pyr·L_pyramid + λ_per·L_perceptual + λ_sty·L_style + λ_adv·L_adv
        + Σ_ROI (λ_local·L_comp_adv + λ_fs·L_comp_style) + λ_id·L_id

The discriminator side: softplus (non-saturating) loss with lazy R1 for the whole-face critic, BCE for
the eye/mouth critics.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import roi_align

from .config import ConfigError


def gram(x: torch.Tensor) -> torch.Tensor:
    """Gram matrix of features ``[N, C, H, W]`` → ``[N, C, C]``, normalised by C·H·W."""
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def image_pyramid(gt: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``gt`` halved bilinearly ``levels - 1`` times, smallest first (the U-Net's RGB outputs' sizes)."""
    pyramid = [gt]
    for _ in range(levels - 1):
        pyramid.insert(0, F.interpolate(pyramid[0], scale_factor=0.5, mode="bilinear", align_corners=False))
    return pyramid


def pyramid_terms(rgbs: Sequence[torch.Tensor], gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The pyramid loss, one term per U-Net intermediate RGB output (``l_p_<size>``): L1 to the
    ground truth at that output's size. The paper's pyramid loss is their sum."""
    pyramid = image_pyramid(gt, len(rgbs))
    return {f"l_p_{rgb.shape[-1]}": F.l1_loss(rgb, target) for rgb, target in zip(rgbs, pyramid)}


def softplus_gan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Non-saturating logistic loss: softplus(−D) for 'real', softplus(D) for 'fake'."""
    return F.softplus(-pred).mean() if real else F.softplus(pred).mean()


def bce_gan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """Binary cross-entropy on logits against 1 (real) or 0 (fake)."""
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    return F.binary_cross_entropy_with_logits(pred, target)


def r1_penalty(real_pred: torch.Tensor, real_img: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E‖∇ₓD(x)‖² on real images; ``real_img`` must require grad."""
    (grad,) = torch.autograd.grad(real_pred.sum(), real_img, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def grey_for_identity(img: torch.Tensor, size: int = 128) -> torch.Tensor:
    """RGB in [-1, 1] → the 128×128 grey input ArcFace expects (ITU-R 601 luma, bilinear resize)."""
    luma = 0.2989 * img[:, 0] + 0.5870 * img[:, 1] + 0.1140 * img[:, 2]
    return F.interpolate(luma[:, None], (size, size), mode="bilinear", align_corners=False)


def identity_loss(arcface: nn.Module, output: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """L1 between the ArcFace embeddings of the restored face and of the ground truth."""
    with torch.no_grad():
        target = arcface(grey_for_identity(gt))
    return F.l1_loss(arcface(grey_for_identity(output)), target)


def component_sizes(out_size: int) -> tuple[int, int]:
    """ROI-align output sizes (eye, mouth): 80 and 120 at 512 px, scaled with the face (at least 16)."""
    ratio = out_size / 512
    return max(16, round(80 * ratio)), max(16, round(120 * ratio))


def crop_components(img: torch.Tensor, loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left eyes, right eyes and mouths of a batch, ROI-aligned from ``loc`` ``[B, 3, 4]`` boxes."""
    b = img.shape[0]
    index = torch.arange(b, device=img.device, dtype=img.dtype).repeat_interleave(2)[:, None]
    eye_rois = torch.cat([index, loc[:, :2].reshape(-1, 4).to(img)], 1)
    mouth_rois = torch.cat([index[::2], loc[:, 2].to(img)], 1)
    eye, mouth = component_sizes(img.shape[-1])
    eyes = roi_align(img, eye_rois, output_size=eye)
    return eyes[0::2], eyes[1::2], roi_align(img, mouth_rois, output_size=mouth)


def component_style_loss(fake_feats: Sequence[torch.Tensor], real_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Gram-matrix L1 on the component critic's two feature maps (half weight on the first)."""
    return (F.l1_loss(gram(fake_feats[0]), gram(real_feats[0].detach())) * 0.5
            + F.l1_loss(gram(fake_feats[1]), gram(real_feats[1].detach())))


# ---------------------------------------------------------------------------------------------------
# VGG19 perceptual and style loss

VGG19_LAYERS = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)


def build_vgg19(weights: str) -> nn.Sequential:
    """torchvision's VGG19 feature layers: 'imagenet' (torchvision's weights, downloaded once), 'random'
    (for tests and offline smoke runs) or the path of a torchvision ``vgg19`` state dict."""
    from torchvision.models import VGG19_Weights, vgg19

    if weights == "random":
        return vgg19(weights=None).features
    if weights == "imagenet":
        try:
            return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
        except Exception as exc:  # offline, proxy, …: say what to do instead
            raise ConfigError(
                f"torchvision's ImageNet VGG19 weights could not be loaded ({type(exc).__name__}: {exc}). "
                f"Download {VGG19_Weights.IMAGENET1K_V1.url} and set model.vgg=PATH, or "
                f"model.vgg=random for a smoke run") from None
    from gfp_core.weights import read_state_dict

    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"model.vgg: {path} does not exist; use imagenet, random or a torchvision vgg19 file")
    state = read_state_dict(path)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    net = vgg19(weights=None).features
    try:
        net.load_state_dict(features, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{path} is not a torchvision vgg19 state dict: {str(exc).splitlines()[0]}") from None
    return net


class VGGFeatures(nn.Module):
    """Frozen VGG19 returning the chosen layers' activations (``conv*`` = before the ReLU).

    Inputs are in [-1, 1]; they are mapped to [0, 1] and normalised with ImageNet's mean and std.
    """

    def __init__(self, layers: Sequence[str], weights: str = "imagenet"):
        super().__init__()
        unknown = set(layers) - set(VGG19_LAYERS)
        if unknown:
            raise ConfigError(f"loss.perceptual_layers: unknown VGG19 layer(s) {sorted(unknown)}")
        self.layers = list(layers)
        last = max(VGG19_LAYERS.index(n) for n in layers)
        self.body = build_vgg19(weights)[: last + 1].eval().requires_grad_(False)
        self.names = VGG19_LAYERS[: last + 1]
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # always a fixed feature extractor

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        out = {}
        for name, layer in zip(self.names, self.body):
            x = layer(x)
            if name in self.layers:
                out[name] = x.clone()  # torchvision's ReLUs work in place
        return out


def perceptual_and_style(vgg: VGGFeatures, output: torch.Tensor, gt: torch.Tensor,
                         layer_weights: Mapping[str, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ wᵢ·L1(φᵢ(out), φᵢ(gt)), Σ wᵢ·L1(Gram φᵢ(out), Gram φᵢ(gt))), before the loss weights."""
    fo = vgg(output)
    with torch.no_grad():
        fg = vgg(gt.detach())
    percep = sum(F.l1_loss(fo[k], fg[k]) * w for k, w in layer_weights.items())
    style = sum(F.l1_loss(gram(fo[k]), gram(fg[k])) * w for k, w in layer_weights.items())
    return percep, style
