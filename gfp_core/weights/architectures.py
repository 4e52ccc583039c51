"""Every network the toolkit loads, each described once: how to build it, how to recognise its weights
from their keys, whether it can be built empty, and which fast kernels it runs with."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..errors import UnsupportedCheckpointError

StateDict = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Architecture:
    """One network the loader can build.

    ``claims(state)``: the state dict's keys say it is this network's; ``read_config(state)``: the
    constructor arguments read from its keys and shapes (it raises KeyError, IndexError, … on a damaged
    one; :func:`detect_architecture` turns that into a clear message). ``build_empty``: every tensor that
    matters is in the checkpoint, so the module is built on the meta device (no random init to throw
    away) and adopts the checkpoint's tensors. ``speed_up(module, device)``: switch a loaded module to
    the fastest kernels measured for ``device`` (not bit-exact; skipped with ``exact=True``).
    """

    name: str
    build: Callable[..., nn.Module]
    claims: Callable[[StateDict], bool] | None = None
    read_config: Callable[[StateDict], dict[str, Any]] | None = None
    build_empty: bool = False
    speed_up: Callable[[nn.Module, torch.device], None] | None = None


# ---------------------------------------------------------------------------------------------------
# builders (imports on first use: building one network must not import every other one's code)


def _from_archs(name: str) -> Callable[..., nn.Module]:
    def build(**kw: Any) -> nn.Module:
        from .. import archs
        return getattr(archs, name)(**kw)
    return build


def _stylegan2_original(**kw: Any) -> nn.Module:
    from ..archs.stylegan2_original import StyleGAN2Generator
    return StyleGAN2Generator(**kw)


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


# ---------------------------------------------------------------------------------------------------
# fast kernels


def _gfpgan_kernels(model: nn.Module, device: torch.device) -> None:
    model.optimize_for_inference()  # chooses by the device the parameters are on


def _fast_convolutions_on_cpu(model: nn.Module, device: torch.device) -> None:
    # detector and parser outputs feed thresholds and blurred masks: float rounding does not show
    if device.type == "cpu":
        from ..archs.conv import use_fast_convolutions
        use_fast_convolutions(model)


# ---------------------------------------------------------------------------------------------------
# GFPGAN from its keys


def _count(state: StateDict, pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


_DECODER_BASE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}

#: a key every GFPGAN state dict has; the first U-Net conv's key tells the flavour
_GFPGAN_MARKER = "stylegan_decoder.style_mlp.1.weight"
_GFPGAN_FIRST_CONV = {"GFPGANv1Clean": "conv_body_first.weight", "GFPGANv1": "conv_body_first.0.weight"}


def _tidy(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _gfpgan_kwargs(state: StateDict) -> dict[str, Any]:
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


def _gfpgan_keys(flavour: str) -> Callable[[StateDict], bool]:
    return lambda state: _GFPGAN_MARKER in state and _GFPGAN_FIRST_CONV[flavour] in state


# ---------------------------------------------------------------------------------------------------
# the table


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    # v1.2, v1.3, v1.4 (plain convolutions) and v1 (StyleGAN2's original blocks)
    Architecture("GFPGANv1Clean", _from_archs("GFPGANv1Clean"), _gfpgan_keys("GFPGANv1Clean"), _gfpgan_kwargs,
                 build_empty=True, speed_up=_gfpgan_kernels),
    Architecture("GFPGANv1", _from_archs("GFPGANv1"), _gfpgan_keys("GFPGANv1"), _gfpgan_kwargs,
                 build_empty=True, speed_up=_gfpgan_kernels),
    # the trainer's networks
    Architecture("StyleGAN2Generator", _stylegan2_original),
    Architecture("StyleGAN2Discriminator", _from_archs("StyleGAN2Discriminator")),
    Architecture("FacialComponentDiscriminator", _from_archs("FacialComponentDiscriminator")),
    Architecture("ResNetArcFace", _from_archs("ResNetArcFace")),
    # face detection and parsing (facexlib's modules), background upsampling (Real-ESRGAN)
    Architecture("RetinaFace", _retinaface, speed_up=_fast_convolutions_on_cpu),
    Architecture("ParseNet", _facexlib("facexlib.parsing.parsenet", "ParseNet"), speed_up=_fast_convolutions_on_cpu),
    Architecture("BiSeNet", _facexlib("facexlib.parsing.bisenet", "BiSeNet"), speed_up=_fast_convolutions_on_cpu),
    Architecture("RRDBNet", _from_archs("RRDBNet")),
    Architecture("SRVGGNetCompact", _from_archs("SRVGGNetCompact")),
)}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnsupportedCheckpointError(f"{name!r} is not a model architecture "
                                         f"(known: {', '.join(ARCHITECTURES)})") from None


def build_architecture(name: str, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    return get_architecture(name).build(**dict(kwargs or {}))


# ---------------------------------------------------------------------------------------------------
# recognising weights


#: what reading the configuration of a damaged state dict can raise
_DAMAGED = (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, AttributeError)


def _why_damaged(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"it lacks {exc.args[0]!r}"
    return f"a tensor has an unexpected shape ({type(exc).__name__}: {exc})"


def _claimant(state: StateDict) -> Architecture | None:
    return next((arch for arch in ARCHITECTURES.values() if arch.claims is not None and arch.claims(state)), None)


def recognise_architecture(state: StateDict) -> tuple[str, dict[str, Any]] | None:
    """Architecture name and constructor arguments of a state dict whose keys say what it is (the
    GFPGAN variants), or None (also when it is too damaged to tell: :func:`detect_architecture`
    explains why)."""
    arch = _claimant(state)
    if arch is None:
        return None
    try:
        return arch.name, arch.read_config(state)
    except _DAMAGED:
        return None


def detect_architecture(state: StateDict, source: str = "checkpoint") -> tuple[str, dict[str, Any]]:
    """Recognise a checkpoint from its keys; raises if it is no architecture we know."""
    arch = _claimant(state)
    if arch is not None:
        try:
            return arch.name, arch.read_config(state)
        except _DAMAGED as exc:
            raise UnsupportedCheckpointError(
                f"{source} looks like a {arch.name} checkpoint but is incomplete or damaged: {_why_damaged(exc)}. "
                f"Download the file again.") from None
    sample = ", ".join(list(state)[:4])
    raise UnsupportedCheckpointError(
        f"{source} is not a GFPGAN checkpoint we recognise (GFPGANv1 or GFPGANv1Clean: v1.2, v1.3, v1.4); "
        f"its first keys are: {sample}. For other models pass a registry name (python -m gfp_core models).")
