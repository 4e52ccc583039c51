"""Discriminators of GFPGAN training: the whole-face StyleGAN2 critic and the facial-component critic.

Both use the original-flavour StyleGAN2 layers of :mod:`.stylegan2_ops` (equalised learning rate,
FIR-blurred stride-2 downsampling, bias + scaled leaky ReLU). Parameter names follow the official
checkpoints so they load with ``strict=True``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .stylegan2_clean import stylegan2_channels
from .stylegan2_ops import ConvLayer, EqualLinear, ResBlockDown


def minibatch_stddev(x: torch.Tensor, group_size: int, num_features: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Append the minibatch standard deviation as extra channel(s) (Karras et al., ProGAN §3).

    The critic sees how varied a group of samples is, which penalises a generator that collapses
    onto few modes. Sample ``i`` belongs to group ``i % (B / G)``; the batch must be a multiple of
    the group size ``G`` (or smaller than it).
    """
    b, c, h, w = x.shape
    group = min(b, group_size)
    if b % group:
        raise ValueError(f"batch size {b} is not a multiple of the stddev group size {group}")
    grouped = x.view(group, -1, num_features, c // num_features, h, w)
    std = torch.sqrt(grouped.var(0, unbiased=False) + eps)  # [B/G, F, C/F, H, W]
    std = std.mean([2, 3, 4]).view(-1, num_features, 1, 1)  # one scalar per group and feature
    return torch.cat([x, std.repeat(group, 1, h, w)], 1)


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 residual discriminator (config F): image → one realness logit per sample.

    ``from_rgb`` 1×1 conv, one :class:`ResBlockDown` per octave down to 4×4, minibatch stddev,
    a 3×3 conv and two equalised linear layers.
    """

    def __init__(self, out_size: int = 512, channel_multiplier: float = 2,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), stddev_group: int = 4, narrow: float = 1):
        super().__init__()
        log_size = int(math.log2(out_size))
        if 2 ** log_size != out_size or not 4 < out_size <= 1024:
            raise ValueError(f"out_size must be a power of two in [8, 1024], got {out_size}")
        self.out_size = out_size
        channels = stylegan2_channels(channel_multiplier, narrow)

        in_channels = channels[f"{out_size}"]
        body: list[nn.Module] = [ConvLayer(3, in_channels, 1)]  # from RGB
        for res in range(log_size - 1, 1, -1):  # ResBlockDown into 2**res
            out_channels = channels[f"{2 ** res}"]
            body.append(ResBlockDown(in_channels, out_channels, resample_kernel))
            in_channels = out_channels
        self.conv_body = nn.Sequential(*body)

        self.stddev_group = stddev_group
        self.stddev_feat = 1
        self.final_conv = ConvLayer(in_channels + self.stddev_feat, channels["4"], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(channels["4"] * 4 * 4, channels["4"], fused_lrelu=True),
            EqualLinear(channels["4"], 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, 3, out_size, out_size]`` in [-1, 1] → logits ``[B, 1]``."""
        feat = self.conv_body(x)
        feat = minibatch_stddev(feat, self.stddev_group, self.stddev_feat)
        feat = self.final_conv(feat)
        return self.final_linear(feat.view(feat.size(0), -1))


class FacialComponentDiscriminator(nn.Module):
    """Small VGG-style patch critic for cropped eyes and mouth (GFPGAN's facial component loss).

    It outputs a logit map rather than a scalar. With ``return_feats`` it also returns two
    intermediate feature maps, whose Gram matrices give the component style loss.
    """

    def __init__(self, resample_kernel: Sequence[float] = (1, 3, 3, 1)):
        super().__init__()
        self.conv1 = ConvLayer(3, 64, 3)
        self.conv2 = ConvLayer(64, 128, 3, downsample=True, resample_kernel=resample_kernel)
        self.conv3 = ConvLayer(128, 128, 3)
        self.conv4 = ConvLayer(128, 256, 3, downsample=True, resample_kernel=resample_kernel)
        self.conv5 = ConvLayer(256, 256, 3)
        self.final_conv = ConvLayer(256, 1, 3, activate=False)

    def forward(self, x: torch.Tensor, return_feats: bool = False
                ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """``x``: component crops ``[B, 3, H, W]`` → (logits ``[B, 1, H/4, W/4]``, features or None)."""
        feat_half = self.conv3(self.conv2(self.conv1(x)))  # H/2
        feat_quarter = self.conv5(self.conv4(feat_half))  # H/4
        out = self.final_conv(feat_quarter)
        return out, ([feat_half, feat_quarter] if return_feats else None)
