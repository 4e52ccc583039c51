"""ResNet-ArcFace face-recognition embedder, used by GFPGAN training for its identity-preserving loss.

Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019. The
network maps a 128×128 grey face to a 512-d embedding; training compares the embeddings of the
restored and the ground-truth face. Parameter names follow the official ``arcface_resnet18.pth``
(``block="IRBlock", layers=(2, 2, 2, 2), use_se=False``) so it loads with ``strict=True``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3×3 conv without bias: a BatchNorm always follows."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): rescale channels by a gate computed from global context."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.PReLU(),
            nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        gate = self.fc(self.avg_pool(x).view(b, c))
        return x * gate.view(b, c, 1, 1)


class IRBlock(nn.Module):
    """Improved residual block of ArcFace: BN → conv → BN → PReLU → conv(stride) → BN [→ SE], + shortcut.

    One PReLU (one learned slope) serves both activations, as in the released weights.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None,
                 use_se: bool = True):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, in_channels)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.prelu = nn.PReLU()
        self.conv2 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.stride = stride
        self.use_se = use_se
        if use_se:
            self.se = SEBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.use_se:
            out = self.se(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + shortcut)


class BasicBlock(nn.Module):
    """The plain ResNet basic block (He et al., 2016): conv → BN → ReLU → conv → BN, + shortcut.

    Takes ``use_se`` only for a uniform block signature; the basic block has no SE gate.
    """

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None,
                 use_se: bool = False):
        super().__init__()
        if use_se:
            raise ValueError("BasicBlock has no squeeze-and-excitation; use IRBlock for use_se=True")
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


BLOCKS: dict[str, type[nn.Module]] = {"IRBlock": IRBlock, "BasicBlock": BasicBlock}


class ResNetArcFace(nn.Module):
    """ResNet trunk (four stages, 64→512 channels, 128→8 pixels) + BN-dropout-FC-BN embedding head."""

    def __init__(self, block: str = "IRBlock", layers: Sequence[int] = (2, 2, 2, 2), use_se: bool = False):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose from {sorted(BLOCKS)}")
        block_cls = BLOCKS[block]
        self.use_se = use_se
        self.inplanes = 64

        self.conv1 = nn.Conv2d(1, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(2, stride=2)
        self.layer1 = self._make_layer(block_cls, 64, layers[0])
        self.layer2 = self._make_layer(block_cls, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block_cls, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block_cls, 512, layers[3], stride=2)
        self.bn4 = nn.BatchNorm2d(512)
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(512 * 8 * 8, 512)
        self.bn5 = nn.BatchNorm1d(512)
        self.reset_parameters()

    def _make_layer(self, block: type[nn.Module], channels: int, num_blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage; its first block changes resolution/width, with a 1×1 conv + BN on the shortcut."""
        out_channels = channels * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        blocks = [block(self.inplanes, channels, stride, downsample, use_se=self.use_se)]
        self.inplanes = out_channels
        blocks += [block(self.inplanes, channels, use_se=self.use_se) for _ in range(1, num_blocks)]
        return nn.Sequential(*blocks)

    def reset_parameters(self) -> None:
        """Xavier-normal convs and linears, identity BatchNorms (the reference initialisation)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: grey faces ``[B, 1, 128, 128]`` → embeddings ``[B, 512]`` (not normalised)."""
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))
