"""Real-ESRGAN super-resolution networks, used to upscale the background around restored faces.

Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
ICCVW 2021. Two generators are used by the released models:

* :class:`RRDBNet` (ESRGAN's residual-in-residual dense network; ``RealESRGAN_x2plus.pth``): all
  convolutions run at the input resolution, then two nearest ×2 upsampling steps give ×4. For
  ×2 and ×1 the input is first pixel-unshuffled (space → channels) by 2 or 4, so the same ×4 body
  produces a ×2 or ×1 result.
* :class:`SRVGGNetCompact` (``realesr-general-x4v3.pth``): a plain stack of 3×3 convolutions at
  the input resolution, a pixel shuffle at the end, plus a nearest-upsampled copy of the input
  so the network only learns the residual.

Parameter names follow the official checkpoints, so they load with ``strict=True``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: pixel-unshuffle factor in front of RRDBNet for each output scale (none for ×4)
_UNSHUFFLE = {4: 1, 2: 2, 1: 4}


def _init_residual_convs(module: nn.Module, gain: float) -> None:
    """Kaiming-normal weights scaled by ``gain`` and zero biases (the published training init):
    small residual branches keep a deep freshly built RRDBNet stable."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            m.weight.data.mul_(gain)
            if m.bias is not None:
                m.bias.data.zero_()


class ResidualDenseBlock(nn.Module):
    """Five 3×3 convs, each seeing the block input and every earlier conv's output (dense links);
    the result is added back to the input scaled by 0.2."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        for i in range(1, 6):
            out_ch = num_feat if i == 5 else num_grow_ch
            setattr(self, f"conv{i}", nn.Conv2d(num_feat + (i - 1) * num_grow_ch, out_ch, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        _init_residual_convs(self, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for i in range(1, 5):
            features.append(self.lrelu(getattr(self, f"conv{i}")(torch.cat(features, 1))))
        return self.conv5(torch.cat(features, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three dense blocks in a row, again added back scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN generator for ``scale`` 4, 2 or 1 (``RealESRGAN_x4plus``/``x2plus`` are 64 features,
    23 blocks). Inputs are RGB in [0, 1]; for scale 2 (1) height and width must be even (multiples of 4)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = _UNSHUFFLE[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle ** 2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            # channel order c, dy, dx as in the official pixel_unshuffle (the same as F.pixel_unshuffle)
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = self.lrelu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown act_type {act_type!r}; use prelu, relu or leakyrelu")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style ×``upscale`` network: ``body`` is conv, act, (conv, act) × ``num_conv``, then a
    conv to ``num_out_ch × upscale²`` channels, pixel-shuffled and added to the nearest-upsampled input."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 32,
                 upscale: int = 4, act_type: str = "prelu"):
        super().__init__()
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    @property
    def scale(self) -> int:
        """The output/input size ratio (the same attribute as :class:`RRDBNet`'s)."""
        return self.upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
