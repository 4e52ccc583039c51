"""The networks of a training run: generator (+ EMA copy), discriminators, ArcFace and VGG19.

Every weight file is found and read through gfp_core's weights layer (registry names or paths,
safe loading only).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gfp_core.archs import FacialComponentDiscriminator, GFPGANv1, GFPGANv1Clean, StyleGAN2Discriminator
from gfp_core.errors import UnsupportedCheckpointError

from .config import ConfigError
from .losses import VGGFeatures

log = logging.getLogger(__name__)

COMPONENTS = ("left_eye", "right_eye", "mouth")


@dataclass
class Networks:
    g: nn.Module
    g_ema: nn.Module
    d: nn.Module
    components: dict[str, nn.Module]  # left_eye / right_eye / mouth critics; empty when switched off
    identity: nn.Module | None
    vgg: VGGFeatures | None

    def trained(self) -> dict[str, nn.Module]:
        """The networks with optimisers, by checkpoint name."""
        return {"g": self.g, "d": self.d, **{f"d_{k}": v for k, v in self.components.items()}}

    def saved(self) -> dict[str, nn.Module]:
        return {**self.trained(), "g_ema": self.g_ema}


def generator_kwargs(model: Mapping[str, Any]) -> dict[str, Any]:
    kw = dict(out_size=model["out_size"], num_style_feat=model["num_style_feat"],
              channel_multiplier=model["channel_multiplier"], num_mlp=model["num_mlp"], input_is_latent=True,
              different_w=model["different_w"], narrow=model["narrow"], sft_half=model["sft_half"])
    if model["arch"] == "GFPGANv1":
        kw["lr_mlp"] = model["lr_mlp"]
    return kw


def build_generator(model: Mapping[str, Any]) -> nn.Module:
    cls = GFPGANv1 if model["arch"] == "GFPGANv1" else GFPGANv1Clean
    return cls(**generator_kwargs(model))


def _read(ref: str, what: str) -> dict[str, torch.Tensor]:
    from gfp_core.weights import read_state_dict, resolve_weights

    return read_state_dict(resolve_weights(ref).path)


def _load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, ref: str, hint: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UnsupportedCheckpointError(f"{ref} does not fit the {what}: {str(exc).splitlines()[0]}. {hint}") from None


def initialise_generator(g: nn.Module, model: Mapping[str, Any]) -> None:
    """scratch: as built; decoder: the StyleGAN2 prior into ``stylegan_decoder``; pretrained: a whole GFPGAN."""
    if model["init"] == "decoder":
        ref = model["decoder"]
        if not ref:
            raise ConfigError("model.init=decoder needs model.decoder (a StyleGAN2 checkpoint name or path)")
        _load_strict(g.stylegan_decoder, _read(ref, "decoder"), f"{model['arch']} decoder", ref,
                     "The official prior (stylegan2_512_prior) is an original-flavour StyleGAN2 with channel "
                     "multiplier 1: use it with model.arch=GFPGANv1, model.channel_multiplier=1 at 512 px.")
    elif model["init"] == "pretrained":
        ref = model["pretrained"]
        if not ref:
            raise ConfigError("model.init=pretrained needs model.pretrained (a GFPGAN checkpoint name or path)")
        from gfp_core.weights import recognise_architecture

        state = _read(ref, "generator")
        found = recognise_architecture(state)
        hint = ""
        if found is not None:
            arch, kw = found
            hint = (f"The checkpoint is a {arch} with {kw}; set model.arch and these model.* settings to match.")
        _load_strict(g, state, f"{model['arch']} generator of this config", ref, hint)
    if model["fix_decoder"]:
        g.stylegan_decoder.requires_grad_(False)


def load_identity(ref: str) -> nn.Module:
    """ArcFace ResNet-18 (registry name or path), frozen, in eval mode."""
    from gfp_core.weights import build_architecture, get_spec

    spec = get_spec("arcface_resnet18")
    net = build_architecture(spec.arch, spec.arch_kwargs)
    _load_strict(net, _read(ref, "identity"), "ArcFace ResNet-18", ref, "model.identity must be arcface_resnet18.")
    return net.eval().requires_grad_(False)


def build_networks(cfg: Mapping[str, Any], device: torch.device) -> Networks:
    """All networks, seeded by ``cfg['seed']`` (every process builds the same ones)."""
    model, loss = cfg["model"], cfg["loss"]
    torch.manual_seed(cfg["seed"])
    g = build_generator(model)
    initialise_generator(g, model)
    d = StyleGAN2Discriminator(out_size=model["out_size"], channel_multiplier=model["d_channel_multiplier"],
                               narrow=model["d_narrow"])
    use_components = bool(model["component_discriminators"] and cfg["data"]["components"]
                          and (loss["component_gan"] > 0 or loss["component_style"] > 0))
    components = {k: FacialComponentDiscriminator() for k in COMPONENTS} if use_components else {}
    identity = load_identity(model["identity"]) if model["identity"] and loss["identity"] > 0 else None
    vgg = None
    if loss["perceptual"] > 0 or loss["style"] > 0:
        vgg = VGGFeatures(list(loss["perceptual_layers"]), model["vgg"])
    g_ema = copy.deepcopy(g).eval().requires_grad_(False)
    nets = Networks(g, g_ema, d, components, identity, vgg)
    for net in (g, g_ema, d, *components.values(), identity, vgg):
        if net is not None:
            net.to(device)
    return nets


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 − decay)·model, over the parameters (frozen ones stay equal)."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.mul_(decay).add_(p, alpha=1 - decay)
