"""Architectures by name, and recognising a GFPGAN variant from its state-dict keys."""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..errors import UnsupportedCheckpointError


def _gfpgan_clean(**kw: Any) -> nn.Module:
    from ..archs import GFPGANv1Clean
    return GFPGANv1Clean(**kw)


def _gfpgan_original(**kw: Any) -> nn.Module:
    from ..archs import GFPGANv1
    return GFPGANv1(**kw)


def _stylegan2_original(**kw: Any) -> nn.Module:
    from ..archs.stylegan2_original import StyleGAN2Generator
    return StyleGAN2Generator(**kw)


def _from_archs(name: str) -> Callable[..., nn.Module]:
    def build(**kw: Any) -> nn.Module:
        from .. import archs
        return getattr(archs, name)(**kw)
    return build


def _facexlib(module: str, name: str) -> Callable[..., nn.Module]:
    def build(**kw: Any) -> nn.Module:
        import importlib
        try:
            cls = getattr(importlib.import_module(module), name)
        except ImportError as exc:
            raise UnsupportedCheckpointError(f"{name} needs the facexlib package: pip install facexlib") from exc
        return cls(**kw)
    return build


def _retinaface(**kw: Any) -> nn.Module:
    """facexlib's RetinaFace in its test phase (softmaxed scores), fp32, built on the CPU: facexlib
    otherwise moves it to CUDA whenever there is one; load_model puts it on the device asked for."""
    import warnings

    kw = {"half": False, "phase": "test", "device": "cpu", **kw}
    with warnings.catch_warnings():
        # facexlib builds its ResNet-50 with torchvision's deprecated ``pretrained=False`` (no download)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.models")
        return _facexlib("facexlib.detection.retinaface", "RetinaFace")(**kw)


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "GFPGANv1Clean": _gfpgan_clean,
    "GFPGANv1": _gfpgan_original,
    "StyleGAN2Generator": _stylegan2_original,
    "StyleGAN2Discriminator": _from_archs("StyleGAN2Discriminator"),
    "FacialComponentDiscriminator": _from_archs("FacialComponentDiscriminator"),
    "ResNetArcFace": _from_archs("ResNetArcFace"),
    "RetinaFace": _retinaface,
    "ParseNet": _facexlib("facexlib.parsing.parsenet", "ParseNet"),
    "BiSeNet": _facexlib("facexlib.parsing.bisenet", "BiSeNet"),
    "RRDBNet": _from_archs("RRDBNet"),
    "SRVGGNetCompact": _from_archs("SRVGGNetCompact"),
}


def build_architecture(arch: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    try:
        builder = BUILDERS[arch]
    except KeyError:
        raise UnsupportedCheckpointError(f"{arch!r} is not a model architecture "
                                         f"(known: {', '.join(BUILDERS)})") from None
    return builder(**dict(kwargs or {}))


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


_DECODER_BASE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


#: keys every GFPGAN state dict has (the first two tell the flavour)
_GFPGAN_MARKER = "stylegan_decoder.style_mlp.1.weight"


def _gfpgan_flavour(state: Mapping[str, torch.Tensor]) -> str | None:
    if _GFPGAN_MARKER not in state:
        return None
    if "conv_body_first.weight" in state:
        return "GFPGANv1Clean"
    if "conv_body_first.0.weight" in state:
        return "GFPGANv1"
    return None


def _gfpgan_kwargs(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Constructor arguments read from the keys and shapes; raises KeyError, IndexError, … when the
    state dict is incomplete or has tensors of the wrong shape."""
    num_style_feat = state[_GFPGAN_MARKER].shape[0]
    num_mlp = _count(state, r"stylegan_decoder\.style_mlp\.(\d+)\.weight")
    out_size = 2 ** (_count(state, r"conv_body_down\.(\d+)\.") + 2)
    narrow = state["stylegan_decoder.constant_input.weight"].shape[1] / 512
    last_rgb = _count(state, r"stylegan_decoder\.to_rgbs\.(\d+)\.") - 1
    top_channels = state[f"stylegan_decoder.to_rgbs.{last_rgb}.modulated_conv.weight"].shape[2]
    channel_multiplier = top_channels / (_DECODER_BASE[out_size] * narrow) if out_size >= 64 else 2
    num_latent = int(math.log2(out_size)) * 2 - 2
    different_w = state["final_linear.weight"].shape[0] == num_latent * num_style_feat
    unet_channels = state["condition_scale.0.0.weight"].shape[0]
    sft_half = state["condition_scale.0.2.weight"].shape[0] == unet_channels
    return dict(out_size=out_size, num_style_feat=num_style_feat, channel_multiplier=_tidy(channel_multiplier),
                num_mlp=num_mlp, input_is_latent=True, different_w=different_w, narrow=_tidy(narrow),
                sft_half=sft_half)


#: what reading the configuration of a damaged GFPGAN state dict can raise
_DAMAGED = (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, AttributeError)


def _why_damaged(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"it lacks {exc.args[0]!r}"
    return f"a tensor has an unexpected shape ({type(exc).__name__}: {exc})"


def detect_gfpgan(state: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, Any]] | None:
    """Architecture name and constructor arguments of a GFPGAN state dict, or None if it is not one
    (or is too incomplete to tell: :func:`detect_architecture` explains why)."""
    arch = _gfpgan_flavour(state)
    if arch is None:
        return None
    try:
        return arch, _gfpgan_kwargs(state)
    except _DAMAGED:
        return None


def _tidy(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def detect_architecture(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> tuple[str, dict[str, Any]]:
    """Recognise a checkpoint from its keys; raises if it is no architecture we know."""
    arch = _gfpgan_flavour(state)
    if arch is not None:
        try:
            return arch, _gfpgan_kwargs(state)
        except _DAMAGED as exc:
            raise UnsupportedCheckpointError(
                f"{source} looks like a {arch} checkpoint but is incomplete or damaged: {_why_damaged(exc)}. "
                f"Download the file again.") from None
    sample = ", ".join(list(state)[:4])
    raise UnsupportedCheckpointError(
        f"{source} is not a GFPGAN checkpoint we recognise (GFPGANv1 or GFPGANv1Clean: v1.2, v1.3, v1.4); "
        f"its first keys are: {sample}. For other models pass a registry name (python -m gfp_core models).")
