"""The models gfp_core knows: what each is, where its file comes from, how to check it.

No official TencentARC repository exists on the Hugging Face Hub, so Hub sources are community
mirrors and every file is checked against the byte size and SHA-256 listed here where a published
value is known; ``sha256_source`` says how well each value is corroborated. Set ``GFP_HUB_REPO=owner/name[@revision]`` to fetch every model from a Hub repository of your
own (a Space's model repo, say) before any other source; files keep their canonical names there.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ..errors import UnknownModelError

GFPGAN_RELEASES = "https://github.com/TencentARC/GFPGAN/releases/download"
FACEXLIB_RELEASES = "https://github.com/xinntao/facexlib/releases/download"
REALESRGAN_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
CODEFORMER_RELEASES = "https://github.com/sczhou/CodeFormer/releases/download"
RESTOREFORMER_PP_RELEASES = "https://github.com/wzhouxiff/RestoreFormerPlusPlus/releases/download"

GFPGAN_LICENSE = "Apache-2.0 (TencentARC/GFPGAN); trained on FFHQ (CC BY-NC-SA 4.0)"
FACEXLIB_LICENSE = "MIT (xinntao/facexlib)"
REALESRGAN_LICENSE = "BSD-3-Clause (xinntao/Real-ESRGAN)"
CODEFORMER_LICENSE = "S-Lab License 1.0, non-commercial use only (sczhou/CodeFormer); trained on FFHQ (CC BY-NC-SA 4.0)"
RESTOREFORMER_LICENSE = ("released by the RestoreFormer authors without a licence file (wzhouxiff/RestoreFormer, "
                         "wzhouxiff/RestoreFormerPlusPlus); trained on FFHQ (CC BY-NC-SA 4.0)")
#: no SHA-256 of these release files could be confirmed in several independent public sources: left
#: unverified (loaded as any unknown file is) rather than guessed
_NO_HASH = "no SHA-256 confirmed by several public sources yet; the file is loaded unverified"


@dataclass(frozen=True)
class HubFile:
    """One file in a Hugging Face Hub repository."""

    repo_id: str
    filename: str
    revision: str = "main"
    repo_type: str = "model"

    def __str__(self) -> str:
        kind = "" if self.repo_type == "model" else f"{self.repo_type}:"
        return f"hf://{kind}{self.repo_id}/{self.filename}@{self.revision}"


@dataclass(frozen=True)
class ModelSpec:
    """A known model. ``arch``/``arch_kwargs`` say how to build it; the rest says where its file is."""

    name: str
    kind: str  # restoration | detection | parsing | recognition | background | training | evaluation
    arch: str
    filename: str
    url: str
    license: str
    description: str
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    hub: tuple[HubFile, ...] = ()
    sha256: str | None = None
    sha256_source: str | None = None  # where the SHA-256 and size come from, and how many sources agree
    size: int | None = None  # bytes of the release file: a file of another size is refused before hashing

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch_kwargs", MappingProxyType(dict(self.arch_kwargs)))

    @property
    def hash_prefix(self) -> str | None:
        """Without a published SHA-256, the leading digits of one that the file's name carries, as
        torch.hub names files (``alexnet-owt-7be5be79.pth``): a weaker check, but corruption and other
        files fail it."""
        if self.sha256:
            return None
        found = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z]+$", self.filename)
        return found.group(1) if found else None

    def hub_sources(self) -> tuple[HubFile, ...]:
        """Hub files to try, a user-configured ``GFP_HUB_REPO`` first."""
        override = os.environ.get("GFP_HUB_REPO", "").strip()
        if not override:
            return self.hub
        repo, _, revision = override.partition("@")
        return (HubFile(repo, self.filename, revision or "main"), *self.hub)


_CLEAN = dict(out_size=512, num_style_feat=512, channel_multiplier=2, num_mlp=8, input_is_latent=True,
              different_w=True, narrow=1, sft_half=True)
_ORIGINAL = dict(_CLEAN, channel_multiplier=1)
#: where the hashes come from. None can be re-derived here (the release files cannot be downloaded where
#: this project is built), so each says how far it is corroborated.
_MANY_SOURCES = ("many independent public sources agree (AUR build recipes that hash the release file, face-pack "
                 "installers, deployment manifests, ONNX model tables); not re-derived by this project")


def _few_sources(which: str) -> str:
    return f"{which}; not re-derived by this project"


def _one_source(which: str) -> str:
    return f"one source only ({which}); not re-derived by this project, treat it as weaker"


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="GFPGANv1", kind="restoration", arch="GFPGANv1", arch_kwargs=_ORIGINAL, aliases=("v1", "1", "1.0"),
        filename="GFPGANv1.pth", url=f"{GFPGAN_RELEASES}/v0.1.0/GFPGANv1.pth", license=GFPGAN_LICENSE,
        description="The paper model: original StyleGAN2 decoder, colourises; channel multiplier 1."),
    ModelSpec(
        name="GFPGANv1.2", kind="restoration", arch="GFPGANv1Clean", arch_kwargs=_CLEAN, aliases=("v1.2", "1.2"),
        filename="GFPGANv1.2.pth", url=f"{GFPGAN_RELEASES}/v1.3.0/GFPGANv1.2.pth", license=GFPGAN_LICENSE,
        description="Clean architecture, no colourisation, sharper with some make-up look.",
        sha256="29e25ee90c170f4231163f4c83df6b59c968b73f3ce00cb884015ae005db083c",
        sha256_source=_few_sources("two independent public sources agree (AUR gfpgan recipes, as "
                                   "v0.2.0/GFPGANCleanv1-NoCE-C2.pth; an ONNX model table, as v1.2)")),
    ModelSpec(
        name="GFPGANv1.3", kind="restoration", arch="GFPGANv1Clean", arch_kwargs=_CLEAN, aliases=("v1.3", "1.3"),
        filename="GFPGANv1.3.pth", url=f"{GFPGAN_RELEASES}/v1.3.0/GFPGANv1.3.pth", license=GFPGAN_LICENSE,
        description="More natural results, better on very low and high quality inputs.",
        hub=(HubFile("Gourieff/ReActor", "models/facerestore_models/GFPGANv1.3.pth", repo_type="dataset"),),
        sha256="c953a88f2727c85c3d9ae72e2bd4846bbaf59fe6972ad94130e23e7017524a70", size=348_632_874,
        sha256_source=_MANY_SOURCES),
    ModelSpec(
        name="GFPGANv1.4", kind="restoration", arch="GFPGANv1Clean", arch_kwargs=_CLEAN,
        aliases=("v1.4", "1.4", "gfpgan"),
        filename="GFPGANv1.4.pth", url=f"{GFPGAN_RELEASES}/v1.3.4/GFPGANv1.4.pth", license=GFPGAN_LICENSE,
        description="v1.3 further trained: more details and better identity (the default).",
        hub=(HubFile("gmk123/GFPGAN", "GFPGANv1.4.pth"),
             HubFile("Gourieff/ReActor", "models/facerestore_models/GFPGANv1.4.pth", repo_type="dataset")),
        sha256="e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad", size=348_632_874,
        sha256_source=_MANY_SOURCES),
    ModelSpec(
        name="RestoreFormer", kind="restoration", arch="RestoreFormer", aliases=("restoreformer", "rf"),
        filename="RestoreFormer.pth", url=f"{GFPGAN_RELEASES}/v1.3.4/RestoreFormer.pth", license=RESTOREFORMER_LICENSE,
        description="RestoreFormer (CVPR 2022): attention over a high-quality face dictionary; the GFPGAN "
                    "release's file. No fidelity control.",
        sha256_source=_NO_HASH),
    ModelSpec(
        name="RestoreFormer++", kind="restoration", arch="RestoreFormerPlusPlus",
        aliases=("restoreformer++", "restoreformerplusplus", "rf++"),
        filename="RestoreFormer++.ckpt", url=f"{RESTOREFORMER_PP_RELEASES}/v1.0.0/RestoreFormer++.ckpt",
        license=RESTOREFORMER_LICENSE,
        description="RestoreFormer++ (TPAMI 2023): multi-scale attention, trained with more degradations. "
                    "No fidelity control.",
        sha256_source=_NO_HASH),
    ModelSpec(
        name="CodeFormer", kind="restoration", arch="CodeFormer", aliases=("codeformer", "codeformer-v0.1.0.pth"),
        filename="codeformer.pth", url=f"{CODEFORMER_RELEASES}/v0.1.0/codeformer.pth", license=CODEFORMER_LICENSE,
        description="CodeFormer (NeurIPS 2022): codebook lookup transformer; fidelity is its weight w "
                    "(its own default 0.5). Non-commercial licence.",
        hub=(HubFile("Gourieff/ReActor", "models/facerestore_models/codeformer-v0.1.0.pth", repo_type="dataset"),),
        sha256_source=_NO_HASH),
    ModelSpec(
        name="retinaface_resnet50", kind="detection", arch="RetinaFace", arch_kwargs={"network_name": "resnet50"},
        aliases=("retinaface", "resnet50"), filename="detection_Resnet50_Final.pth",
        url=f"{FACEXLIB_RELEASES}/v0.1.0/detection_Resnet50_Final.pth", license=FACEXLIB_LICENSE,
        description="RetinaFace face detector, ResNet-50 backbone (accurate).",
        hub=(HubFile("camenduru/facexlib", "detection_Resnet50_Final.pth"),),
        sha256="6d1de9c2944f2ccddca5f5e010ea5ae64a39845a86311af6fdf30841b0a5a16d", size=109_497_761,
        sha256_source=_MANY_SOURCES),
    ModelSpec(
        name="retinaface_mobile0.25", kind="detection", arch="RetinaFace", arch_kwargs={"network_name": "mobile0.25"},
        aliases=("mobilenet", "mobile0.25"), filename="detection_mobilenet0.25_Final.pth",
        url=f"{FACEXLIB_RELEASES}/v0.1.0/detection_mobilenet0.25_Final.pth", license=FACEXLIB_LICENSE,
        description="RetinaFace face detector, MobileNet-0.25 backbone (fast).",
        sha256="2979b33ffafda5d74b6948cd7a5b9a7a62f62b949cef24e95fd15d2883a65220",
        sha256_source=_one_source("the AUR facexlib build recipe")),
    ModelSpec(
        name="parsenet", kind="parsing", arch="ParseNet", arch_kwargs={"in_size": 512, "out_size": 512,
                                                                       "parsing_ch": 19},
        filename="parsing_parsenet.pth", url=f"{FACEXLIB_RELEASES}/v0.2.2/parsing_parsenet.pth",
        license=FACEXLIB_LICENSE, description="Face parsing for paste-back masks (the official pipeline's).",
        hub=(HubFile("camenduru/facexlib", "parsing_parsenet.pth"), HubFile("gmk123/GFPGAN", "parsing_parsenet.pth")),
        sha256="3d558d8d0e42c20224f13cf5a29c79eba2d59913419f945545d8cf7b72920de2", size=85_331_193,
        sha256_source=_MANY_SOURCES),
    ModelSpec(
        name="bisenet", kind="parsing", arch="BiSeNet", arch_kwargs={"num_class": 19},
        filename="parsing_bisenet.pth", url=f"{FACEXLIB_RELEASES}/v0.2.0/parsing_bisenet.pth",
        license=FACEXLIB_LICENSE, description="BiSeNet face parsing (19 classes).",
        sha256="468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
        sha256_source=_one_source("the AUR facexlib build recipe")),
    ModelSpec(
        name="arcface_resnet18", kind="recognition", arch="ResNetArcFace",
        arch_kwargs={"block": "IRBlock", "layers": (2, 2, 2, 2), "use_se": False}, aliases=("arcface",),
        filename="arcface_resnet18.pth", url=f"{GFPGAN_RELEASES}/v0.1.0/arcface_resnet18.pth",
        license=GFPGAN_LICENSE, description="ArcFace ResNet-18 identity network (training identity loss)."),
    ModelSpec(
        name="realesrgan_x2plus", kind="background", arch="RRDBNet",
        arch_kwargs={"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 2},
        aliases=("realesrgan",), filename="RealESRGAN_x2plus.pth",
        url=f"{REALESRGAN_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth", license=REALESRGAN_LICENSE,
        description="Real-ESRGAN x2 (RRDBNet): background upsampler of the official GFPGAN inference.",
        sha256="49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
        sha256_source=_one_source("an install script, which hashes a Hugging Face Hub copy")),
    ModelSpec(
        name="realesr_general_x4v3", kind="background", arch="SRVGGNetCompact",
        arch_kwargs={"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 32, "upscale": 4,
                     "act_type": "prelu"},
        aliases=("realesr-general-x4v3",), filename="realesr-general-x4v3.pth",
        url=f"{REALESRGAN_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth", license=REALESRGAN_LICENSE,
        description="Real-ESRGAN general x4 v3 (compact VGG-style): a small, fast background upsampler.",
        sha256="8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292",
        sha256_source=_one_source("an install script")),
    ModelSpec(
        name="stylegan2_512_prior", kind="training", arch="StyleGAN2Generator",
        arch_kwargs={"out_size": 512, "num_style_feat": 512, "num_mlp": 8, "channel_multiplier": 1},
        filename="StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth",
        url=f"{GFPGAN_RELEASES}/v0.1.0/StyleGAN2_512_Cmul1_FFHQ_B12G4_scratch_800k.pth", license=GFPGAN_LICENSE,
        description="StyleGAN2 trained on FFHQ 512: the generative prior GFPGAN training starts from."),
    ModelSpec(
        name="alexnet_imagenet", kind="evaluation", arch="data", filename="alexnet-owt-7be5be79.pth",
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", license="BSD-3-Clause (torchvision)",
        description="torchvision's ImageNet AlexNet: the LPIPS backbone of `python -m train evaluate`."),
    ModelSpec(
        name="inception_fid", kind="evaluation", arch="data", filename="pt_inception-2015-12-05-6726825d.pth",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        license="Apache-2.0 (pytorch-fid; TensorFlow's FID Inception weights)",
        description="The Inception-v3 of TensorFlow's FID, as pytorch-fid ships it: the FID of `python -m train evaluate`."),
    ModelSpec(
        name="niqe_pris_params", kind="evaluation", arch="data", filename="niqe_pris_params.npz",
        url="https://github.com/XPixelGroup/BasicSR/raw/v1.4.2/basicsr/metrics/niqe_pris_params.npz",
        license="Apache-2.0 (BasicSR)",
        description="NIQE's pristine-image model (from the MATLAB release, as BasicSR ships it)."),
    ModelSpec(
        name="ffhq_eye_mouth_landmarks", kind="training", arch="data",
        filename="FFHQ_eye_mouth_landmarks_512.pth", url=f"{GFPGAN_RELEASES}/v0.1.0/FFHQ_eye_mouth_landmarks_512.pth",
        license=GFPGAN_LICENSE, description="Eye and mouth boxes of FFHQ 512 (facial-component losses)."),
)


def _key(name: str) -> str:
    return name.strip().lower()


_BY_NAME: dict[str, ModelSpec] = {}
for _spec in MODELS:
    for _n in (_spec.name, *_spec.aliases, _spec.filename):
        _BY_NAME[_key(_n)] = _spec


def known_names() -> list[str]:
    return [spec.name for spec in MODELS]


def find_spec(name: str) -> ModelSpec | None:
    """The spec for a name, alias or canonical file name; None if unknown."""
    return _BY_NAME.get(_key(name))


def get_spec(name: str) -> ModelSpec:
    spec = find_spec(name)
    if spec is None:
        raise UnknownModelError(
            f"unknown model {name!r}. Known models: {', '.join(known_names())} "
            f"(aliases such as v1.4 work too), or pass the path of a GFPGAN weights file")
    return spec
