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
    adapt: Callable[[StateDict], StateDict] | None = None


def adapt_state(arch: Architecture, state: StateDict) -> StateDict:
    """The state dict as ``arch``'s module names its tensors (``Architecture.adapt``; most files
    already are)."""
    return dict(state) if arch.adapt is None else arch.adapt(state)


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
# other face restorers (gfp_core.archs.face_models: spandrel's networks)


def _face_model(name: str) -> Callable[..., nn.Module]:
    def build(**kw: Any) -> nn.Module:
        try:
            from ..archs import face_models
        except ImportError as exc:
            raise UnsupportedCheckpointError(
                f"{name} needs the spandrel and spandrel-extra-arches packages: "
                f"pip install spandrel spandrel-extra-arches") from exc
        return getattr(face_models, name)(**kw)
    return build


def _without_prefix(state: StateDict, prefix: str = "vqvae.") -> StateDict:
    """RestoreFormer(++) release .ckpt files are Lightning checkpoints: the network's tensors under
    'vqvae.', the training losses' (discriminators, perceptual networks) beside them."""
    if not any(k.startswith(prefix) for k in state):
        return state
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


_RESTOREFORMER_KEYS = ("quantize.embedding.weight", "encoder.conv_in.weight", "quant_conv.weight",
                       "encoder.conv_out.weight", "decoder.conv_out.weight")


def _decoder_attention_levels(state: StateDict) -> int:
    return _count(state, r"decoder\.up\.(\d+)\.attn\.")


def _restoreformer_keys(levels: int) -> Callable[[StateDict], bool]:
    """RestoreFormer's decoder attends at one level (16²), RestoreFormer++'s at two (16², 32²)."""
    def claims(state: StateDict) -> bool:
        state = _without_prefix(state)
        return all(k in state for k in _RESTOREFORMER_KEYS) and _decoder_attention_levels(state) == levels
    return claims


def _restoreformer_kwargs(state: StateDict) -> dict[str, Any]:
    """Constructor arguments from the keys and shapes (the attention heads cannot be read from them:
    each network's own count, RestoreFormer 8 and RestoreFormer++ 4, is its class default)."""
    state = _without_prefix(state)
    embedding = state["quantize.embedding.weight"]
    ch = state["encoder.conv_in.weight"].shape[0]
    z_channels = state["quant_conv.weight"].shape[1]
    levels = _count(state, r"encoder\.down\.(\d+)\.")
    return dict(n_embed=embedding.shape[0], embed_dim=embedding.shape[1], ch=ch,
                in_channels=state["encoder.conv_in.weight"].shape[1],
                out_ch=state["decoder.conv_out.weight"].shape[0],
                ch_mult=tuple(state[f"encoder.down.{i}.block.0.conv2.weight"].shape[0] // ch for i in range(levels)),
                num_res_blocks=_count(state, r"encoder\.down\.0\.block\.(\d+)\."),
                z_channels=z_channels, double_z=state["encoder.conv_out.weight"].shape[0] == 2 * z_channels,
                enable_mid="encoder.mid.block_1.norm1.weight" in state)


_CODEFORMER_KEYS = ("position_emb", "idx_pred_layer.1.weight", "quantize.embedding.weight",
                    "ft_layers.0.self_attn.in_proj_weight", "encoder.blocks.0.weight")


def _codeformer_keys(state: StateDict) -> bool:
    return all(k in state for k in _CODEFORMER_KEYS)


def _codeformer_kwargs(state: StateDict) -> dict[str, Any]:
    """Constructor arguments from the keys and shapes (8 attention heads, as every release has: the
    head count cannot be read from them)."""
    position = state["position_emb"]
    return dict(dim_embd=position.shape[1], latent_size=position.shape[0],
                codebook_size=state["idx_pred_layer.1.weight"].shape[0],
                n_layers=_count(state, r"ft_layers\.(\d+)\."),
                connect_list=[s for s in ("16", "32", "64", "128", "256", "512")
                              if f"fuse_convs_dict.{s}.scale.0.weight" in state])


#: keys of networks we recognise but cannot build, and what to say about them
_KNOWN_UNSUPPORTED = (
    (lambda state: any(k.startswith("ecd0.") for k in state) and any(k.startswith("generator.") for k in state),
     "a GPEN checkpoint; GPEN is not supported yet: use GFPGAN, RestoreFormer, RestoreFormer++ or CodeFormer"),
)


# ---------------------------------------------------------------------------------------------------
# the table


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    # v1.2, v1.3, v1.4 (plain convolutions) and v1 (StyleGAN2's original blocks)
    Architecture("GFPGANv1Clean", _from_archs("GFPGANv1Clean"), _gfpgan_keys("GFPGANv1Clean"), _gfpgan_kwargs,
                 build_empty=True, speed_up=_gfpgan_kernels),
    Architecture("GFPGANv1", _from_archs("GFPGANv1"), _gfpgan_keys("GFPGANv1"), _gfpgan_kwargs,
                 build_empty=True, speed_up=_gfpgan_kernels),
    # other face restorers (spandrel's networks, with GFPGAN's calling convention)
    Architecture("RestoreFormer", _face_model("RestoreFormer"), _restoreformer_keys(1), _restoreformer_kwargs,
                 build_empty=True, adapt=_without_prefix),
    Architecture("RestoreFormerPlusPlus", _face_model("RestoreFormerPlusPlus"), _restoreformer_keys(2),
                 _restoreformer_kwargs, build_empty=True, adapt=_without_prefix),
    Architecture("CodeFormer", _face_model("CodeFormer"), _codeformer_keys, _codeformer_kwargs, build_empty=True),
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
    face restorers), or None (also when it is too damaged to tell: :func:`detect_architecture`
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
    for looks_like, what in _KNOWN_UNSUPPORTED:
        if looks_like(state):
            raise UnsupportedCheckpointError(f"{source} is {what}.")
    sample = ", ".join(list(state)[:4])
    raise UnsupportedCheckpointError(
        f"{source} is not a face-restoration checkpoint we recognise (GFPGAN v1, v1.2, v1.3, v1.4, RestoreFormer, "
        f"RestoreFormer++, CodeFormer); its first keys are: {sample}. For other models pass a registry name "
        f"(python -m gfp_core models).")
