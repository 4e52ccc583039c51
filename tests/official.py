"""Access to the official implementation (PyPI ``gfpgan`` 1.3.8 + ``basicsr`` 1.4.2), a test-only peer.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor``, removed from torchvision, and
its fused leaky ReLU exists only as a compiled CUDA extension; both are patched here so the
official architectures run on CPU. Nothing of ours is imported by this module.
"""
from __future__ import annotations

import sys
import types

import torch
from torch.nn import functional as F


def _cpu_fused_leaky_relu(input, bias, negative_slope=0.2, scale=2 ** 0.5):
    rest = [1] * (input.ndim - bias.ndim - 1)
    return F.leaky_relu(input + bias.view(1, bias.shape[0], *rest), negative_slope) * scale


def load_official():
    """Import and patch the official packages once; returns ``gfpgan.archs`` helpers as a namespace."""
    if "torchvision.transforms.functional_tensor" not in sys.modules:
        import torchvision.transforms.functional as tvf

        shim = types.ModuleType("torchvision.transforms.functional_tensor")
        shim.rgb_to_grayscale = tvf.rgb_to_grayscale
        sys.modules["torchvision.transforms.functional_tensor"] = shim

    import basicsr.archs.stylegan2_arch as stylegan2_arch
    import basicsr.ops.fused_act.fused_act as fused_act

    fused_act.fused_leaky_relu = _cpu_fused_leaky_relu
    stylegan2_arch.fused_leaky_relu = _cpu_fused_leaky_relu

    from gfpgan.archs.arcface_arch import ResNetArcFace
    from gfpgan.archs.gfpganv1_arch import FacialComponentDiscriminator, GFPGANv1
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return types.SimpleNamespace(
        GFPGANv1Clean=GFPGANv1Clean,
        GFPGANv1=GFPGANv1,
        FacialComponentDiscriminator=FacialComponentDiscriminator,
        StyleGAN2Discriminator=stylegan2_arch.StyleGAN2Discriminator,
        ResNetArcFace=ResNetArcFace,
    )


# The configurations the official inference code (gfpgan.utils.GFPGANer) builds.
OFFICIAL_KWARGS = dict(out_size=512, num_style_feat=512, decoder_load_path=None, num_mlp=8,
                       input_is_latent=True, different_w=True, narrow=1, sft_half=True)


def official_gfpgan(arch: str, seed: int, noise_strength: float = 0.0) -> torch.nn.Module:
    """A seeded random official GFPGAN in eval mode; ``arch`` is 'clean' (v1.2–1.4) or 'original' (v1).

    A fresh model's noise strengths are all zero; ``noise_strength`` sets them so noise matters.
    """
    official = load_official()
    torch.manual_seed(seed)
    if arch == "clean":
        net = official.GFPGANv1Clean(channel_multiplier=2, fix_decoder=False, **OFFICIAL_KWARGS)
    else:
        net = official.GFPGANv1(channel_multiplier=1, fix_decoder=True, **OFFICIAL_KWARGS)
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith("stylegan_decoder.") and name.endswith(".weight") and param.numel() == 1:
                param.fill_(noise_strength)
    return net.eval()


def load_official_restoreformer():
    """``gfpgan.archs.restoreformer_arch`` (the module the GFPGAN release's RestoreFormer.pth runs with)."""
    load_official()
    import gfpgan.archs.restoreformer_arch as restoreformer_arch

    return restoreformer_arch


def load_official_codeformer():
    """The official CodeFormer network (``codeformer_arch.py`` of sczhou/CodeFormer, as packaged by PyPI
    ``codeformer-pip`` 0.0.4). Its package __init__ files import a whole training framework; only the two
    architecture files are run here, with the registry and logger they import stubbed."""
    import importlib.util
    import logging
    from pathlib import Path

    name = "codeformer.basicsr.archs.codeformer_arch"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("codeformer")
    if spec is None or spec.origin is None:
        raise ImportError("codeformer-pip is not installed (requirements-official.txt)")
    archs = Path(spec.origin).parent / "basicsr" / "archs"

    class _Registry:
        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    stubs = {"codeformer": Path(spec.origin).parent, "codeformer.basicsr": archs.parent,
             "codeformer.basicsr.archs": archs, "codeformer.basicsr.utils": None, "codeformer.basicsr.utils.registry": None}
    for mod_name, path in stubs.items():
        if mod_name not in sys.modules:
            module = types.ModuleType(mod_name)
            module.__path__ = [str(path)] if path is not None else []
            sys.modules[mod_name] = module
    sys.modules["codeformer.basicsr.utils"].get_root_logger = lambda *a, **k: logging.getLogger("codeformer")
    sys.modules["codeformer.basicsr.utils.registry"].ARCH_REGISTRY = _Registry()
    for file in ("vqgan_arch", "codeformer_arch"):
        full = f"codeformer.basicsr.archs.{file}"
        file_spec = importlib.util.spec_from_file_location(full, archs / f"{file}.py")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[full] = module
        file_spec.loader.exec_module(module)
    return sys.modules[name]
