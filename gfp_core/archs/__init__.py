"""Network architectures. Parameter names match the official checkpoints (``strict=True`` loading)."""
from .arcface import ResNetArcFace
from .discriminators import FacialComponentDiscriminator, StyleGAN2Discriminator
from .gfpgan import GFPGANv1, GFPGANv1Clean
from .realesrgan import RRDBNet, SRVGGNetCompact
from .sft import spatial_feature_transform

__all__ = [
    "GFPGANv1",
    "GFPGANv1Clean",
    "spatial_feature_transform",
    "StyleGAN2Discriminator",
    "FacialComponentDiscriminator",
    "ResNetArcFace",
    "RRDBNet",
    "SRVGGNetCompact",
]
