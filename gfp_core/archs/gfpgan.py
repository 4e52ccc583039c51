"""GFPGAN: a degradation-removal U-Net whose features steer a pretrained StyleGAN2 through CS-SFT.

Wang et al., "Towards Real-World Blind Face Restoration with Generative Facial Prior", CVPR 2021.

    x ─► U-Net encoder ─► bottleneck ─► linear ─► latent codes w ─────────────┐
                     └─► U-Net decoder ─► per-resolution (α, β) ─► CS-SFT ─► StyleGAN2 ─► face

Two variants share that forward pass and differ in their building blocks:

* :class:`GFPGANv1Clean` — bilinear resampling and plain convolutions (GFPGANv1.2, v1.3, v1.4).
* :class:`GFPGANv1` — the original paper model with StyleGAN2's equalised layers and FIR
  resampling (GFPGANv1.pth), here in plain PyTorch.

Both return ``(image, rgbs)`` like the official code: the restored face in [-1, 1] and, when
``return_rgb``, the U-Net's intermediate RGB predictions (used by the training pyramid loss).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .conv import Conv2d, fast_kernels
from .sft import keep_going, check_fidelity
from .stylegan2_clean import StyleGAN2GeneratorClean, stylegan2_channels
from .stylegan2_original import StyleGAN2Generator
from .stylegan2_ops import ConvLayer, EqualConv2d, EqualLinear, FusedLeakyReLU, ResBlockDown, ScaledLeakyReLU


Block = Callable[[int, int], nn.Module]


class GFPGANBase(nn.Module):
    """The forward pass shared by both variants; subclasses build the layers.

    Attributes set by subclasses: ``conv_body_first``, ``conv_body_down``, ``final_conv``,
    ``final_linear``, ``conv_body_up``, ``toRGB``, ``condition_scale``, ``condition_shift``,
    ``stylegan_decoder``.
    """

    #: layout the forward pass runs in; see :meth:`to_channels_last`
    memory_format: torch.memory_format = torch.contiguous_format
    #: let the forward pass use kernels that are faster but not bit-exact; see :meth:`optimize_for_inference`
    fast_kernels: bool = False

    def __init__(self, out_size: int, num_style_feat: int, input_is_latent: bool, different_w: bool,
                 sft_half: bool):
        super().__init__()
        self.out_size = out_size
        self.log_size = int(math.log(out_size, 2))
        self.num_style_feat = num_style_feat
        self.input_is_latent = input_is_latent
        self.different_w = different_w
        self.sft_half = sft_half

    def build_unet(self, channels: dict[str, int], first: Block, down: Block, final: Block, up: Block,
                   to_rgb: Callable[[int], nn.Module], sft_head: Callable[[int, int, float], nn.Module]) -> None:
        """Lay out the U-Net with the variant's blocks (factories of ``(in_channels, out_channels)``).

        ``sft_head(channels, out_channels, last_bias)`` builds one scale (bias 1) or shift (bias 0) head.
        """
        in_ch = channels[f"{self.out_size}"]
        self.conv_body_first = first(3, in_ch)
        self.conv_body_down = nn.ModuleList()
        for i in range(self.log_size, 2, -1):
            self.conv_body_down.append(down(in_ch, channels[f"{2 ** (i - 1)}"]))
            in_ch = channels[f"{2 ** (i - 1)}"]
        self.final_conv = final(in_ch, channels["4"])

        self.conv_body_up = nn.ModuleList()
        self.toRGB = nn.ModuleList()
        self.condition_scale = nn.ModuleList()
        self.condition_shift = nn.ModuleList()
        in_ch = channels["4"]
        for i in range(3, self.log_size + 1):
            out_ch = channels[f"{2 ** i}"]
            self.conv_body_up.append(up(in_ch, out_ch))
            self.toRGB.append(to_rgb(out_ch))
            # with sft_half the maps cover half of the generator's channels (twice the U-Net's)
            sft_ch = out_ch if self.sft_half else out_ch * 2
            self.condition_scale.append(sft_head(out_ch, sft_ch, 1.0))
            self.condition_shift.append(sft_head(out_ch, sft_ch, 0.0))
            in_ch = out_ch

    def to_channels_last(self) -> GFPGANBase:
        """Store the 4-D weights channels-last (NHWC) and run the forward pass in that layout.

        oneDNN's CPU convolutions and cuDNN's tensor-core kernels are fastest on NHWC tensors. The
        result differs from the reference NCHW layout only by float rounding (about 1e-6).
        """
        for module in self.modules():
            for param in module.parameters(recurse=False):
                if param.ndim == 4:
                    param.data = param.data.contiguous(memory_format=torch.channels_last)
        self.memory_format = torch.channels_last
        return self

    def optimize_for_inference(self) -> GFPGANBase:
        """Pick the fastest kernels measured for where the model lives (``bench/bench_forward.py``).

        On the CPU: Winograd 3×3 convolutions (:mod:`gfp_core.archs.conv`), in NCHW for float32; bf16
        runs channels-last, its wide layers in float32 Winograd. CUDA: channels-last. Results differ
        from the reference kernels by float rounding only (bf16: by its precision); a model that is
        never optimised reproduces the official code bit for bit.
        """
        param = next(self.parameters())
        if param.device.type == "cpu":
            self.fast_kernels = True
        if param.device.type == "cuda" or (param.device.type == "cpu" and param.dtype is not torch.float32):
            self.to_channels_last()
        return self

    def latent_count(self) -> int:
        """How many w codes the bottleneck predicts: one per generator layer, or a single shared one."""
        return self.log_size * 2 - 2 if self.different_w else 1

    def encode_activation(self, feat: torch.Tensor) -> torch.Tensor:
        """Activation after the first and last encoder convs (built into ConvLayer in v1)."""
        return feat

    def forward(self, x: torch.Tensor, return_rgb: bool = True, randomize_noise: bool = False,
                fidelity: float = 1.0, check: Callable[[], None] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Restore aligned faces ``x`` (``[B, 3, S, S]`` in [-1, 1], S = ``out_size``).

        ``randomize_noise``: draw fresh StyleGAN2 noise instead of the stored maps (the default is
        deterministic). ``fidelity``: strength of the CS-SFT modulation (1: the published model; see :mod:`gfp_core.archs.sft`).
        ``check``: called before every stage (each U-Net encoder and decoder block, each StyleGAN2
        resolution: ``3·log2(S) − 5`` calls, 22 at 512 px); it stops the forward pass by raising,
        which is how a host application interrupts one (see :func:`gfp_core.restore.restore_aligned`).
        """
        with fast_kernels(self.fast_kernels):
            return self._forward(x, return_rgb, randomize_noise, fidelity, check or keep_going)

    def _forward(self, x: torch.Tensor, return_rgb: bool, randomize_noise: bool, fidelity: float,
                 check: Callable[[], None]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fidelity = check_fidelity(fidelity)
        style, conditions, rgbs = self.encode(x, return_rgb, check)
        # the StyleGAN2 prior, steered by the latent code(s) and the CS-SFT maps
        image, _ = self.stylegan_decoder([style], input_is_latent=self.input_is_latent,
                                         randomize_noise=randomize_noise, conditions=conditions,
                                         sft_half=self.sft_half, fidelity=fidelity, check=check)
        return image, rgbs

    def encode(self, x: torch.Tensor, return_rgb: bool = False, check: Callable[[], None] = keep_going
               ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The U-Net: faces → the latent code(s) of the prior, the CS-SFT scale/shift maps (coarse to
        fine, alternating) and, if ``return_rgb``, the decoder's intermediate RGB images."""
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != self.out_size or x.shape[3] != self.out_size:
            raise ValueError(f"expected faces of shape [B, 3, {self.out_size}, {self.out_size}], got {list(x.shape)}")

        x = x.contiguous(memory_format=self.memory_format)
        # U-Net encoder: degraded face → bottleneck features, keeping skips for the decoder
        feat = self.encode_activation(self.conv_body_first(x))
        skips = []
        for down in self.conv_body_down:
            check()
            feat = down(feat)
            skips.insert(0, feat)
        feat = self.encode_activation(self.final_conv(feat))

        # bottleneck → latent code(s) w of the StyleGAN2 prior
        style = self.final_linear(feat.reshape(feat.size(0), -1))
        if self.different_w:
            style = style.view(style.size(0), -1, self.num_style_feat)

        # U-Net decoder: spatial scale/shift maps for CS-SFT at every resolution
        conditions: list[torch.Tensor] = []
        rgbs: list[torch.Tensor] = []
        for i, up in enumerate(self.conv_body_up):
            check()
            feat = up(feat + skips[i])
            conditions.append(self.condition_scale[i](feat))
            conditions.append(self.condition_shift[i](feat))
            if return_rgb:
                rgbs.append(self.toRGB[i](feat))
        return style, conditions, rgbs


def _unet_channels(channel_multiplier: float, narrow: float) -> dict[str, int]:
    return stylegan2_channels(channel_multiplier, narrow * 0.5)  # the U-Net is half as wide


class ResBlockClean(nn.Module):
    """Residual block with bilinear up- or downsampling (U-Net of the clean model)."""

    def __init__(self, in_channels: int, out_channels: int, mode: str = "down"):
        super().__init__()
        self.conv1 = Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = Conv2d(in_channels, out_channels, 3, 1, 1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.scale_factor = 0.5 if mode == "down" else 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu_(self.conv1(x), negative_slope=0.2)
        out = F.interpolate(out, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        out = F.leaky_relu_(self.conv2(out), negative_slope=0.2)
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        skip = self.skip(x)
        return out + skip if out.requires_grad else out.add_(skip)


class GFPGANv1Clean(GFPGANBase):
    """GFPGAN without custom ops: the architecture of GFPGANv1.2 / v1.3 / v1.4.

    Defaults are those of the published checkpoints (512 px, channel multiplier 2, one w per
    layer, SFT on half of the channels).
    """

    def __init__(self, out_size: int = 512, num_style_feat: int = 512, channel_multiplier: float = 2,
                 num_mlp: int = 8, input_is_latent: bool = True, different_w: bool = True, narrow: float = 1,
                 sft_half: bool = True):
        super().__init__(out_size, num_style_feat, input_is_latent, different_w, sft_half)
        ch = _unet_channels(channel_multiplier, narrow)
        self.build_unet(
            ch,
            first=lambda i, o: nn.Conv2d(i, o, 1),
            down=lambda i, o: ResBlockClean(i, o, mode="down"),
            final=lambda i, o: Conv2d(i, o, 3, 1, 1),
            up=lambda i, o: ResBlockClean(i, o, mode="up"),
            to_rgb=lambda c: nn.Conv2d(c, 3, 1),
            sft_head=lambda c, o, _bias: nn.Sequential(Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2, True),
                                                       Conv2d(c, o, 3, 1, 1)))
        self.final_linear = nn.Linear(ch["4"] * 4 * 4, self.latent_count() * num_style_feat)
        self.stylegan_decoder = StyleGAN2GeneratorClean(out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
                                                        channel_multiplier=channel_multiplier, narrow=narrow)

    def encode_activation(self, feat: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu_(feat, negative_slope=0.2)


class ConvUpLayer(nn.Module):
    """Bilinear 2× upsampling followed by an equalised conv (+ fused bias-act)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 bias: bool = True, activate: bool = True):
        super().__init__()
        self.scale = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = padding
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias and not activate else None
        if activate:
            self.activation: nn.Module | None = FusedLeakyReLU(out_channels) if bias else ScaledLeakyReLU()
        else:
            self.activation = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(out, self.weight * self.scale, bias=self.bias, padding=self.padding)
        return out if self.activation is None else self.activation(out)


class ResUpBlock(nn.Module):
    """Residual block with upsampling (U-Net decoder of GFPGANv1)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvUpLayer(in_channels, out_channels, 3, padding=1)
        self.skip = ConvUpLayer(in_channels, out_channels, 1, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class GFPGANv1(GFPGANBase):
    """The original GFPGAN (GFPGANv1.pth): equalised layers, FIR resampling, channel multiplier 1."""

    def __init__(self, out_size: int = 512, num_style_feat: int = 512, channel_multiplier: float = 1,
                 resample_kernel: Sequence[float] = (1, 3, 3, 1), num_mlp: int = 8, lr_mlp: float = 0.01,
                 input_is_latent: bool = True, different_w: bool = True, narrow: float = 1,
                 sft_half: bool = True):
        super().__init__(out_size, num_style_feat, input_is_latent, different_w, sft_half)
        ch = _unet_channels(channel_multiplier, narrow)
        self.build_unet(
            ch,
            first=lambda i, o: ConvLayer(i, o, 1),
            down=lambda i, o: ResBlockDown(i, o, resample_kernel),
            final=lambda i, o: ConvLayer(i, o, 3),
            up=ResUpBlock,
            to_rgb=lambda c: EqualConv2d(c, 3, 1),
            sft_head=lambda c, o, bias: nn.Sequential(EqualConv2d(c, c, 3, padding=1), ScaledLeakyReLU(),
                                                      EqualConv2d(c, o, 3, padding=1, bias_init=bias)))
        self.final_linear = EqualLinear(ch["4"] * 4 * 4, self.latent_count() * num_style_feat)
        self.stylegan_decoder = StyleGAN2Generator(out_size, num_style_feat=num_style_feat, num_mlp=num_mlp,
                                                   channel_multiplier=channel_multiplier,
                                                   resample_kernel=resample_kernel, lr_mlp=lr_mlp, narrow=narrow)
